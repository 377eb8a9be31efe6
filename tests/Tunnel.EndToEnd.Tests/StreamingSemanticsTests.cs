using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class StreamingSemanticsTests
{
    [Fact]
    public async Task Response_trailers_reach_an_http2_visitor()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app => app.MapGet("/trailers", async (HttpContext context) =>
        {
            context.Response.DeclareTrailer("x-checksum");
            await context.Response.WriteAsync("body");
            context.Response.AppendTrailer("x-checksum", "abc123");
        }));

        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/trailers")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Headers = { Host = TunnelHarness.Hostname },
        };
        using var response = await client.SendAsync(request);
        Assert.Equal("body", await response.Content.ReadAsStringAsync());
        Assert.True(response.TrailingHeaders.TryGetValues("x-checksum", out var values), "no trailer arrived");
        Assert.Equal("abc123", Assert.Single(values));
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task A_visitor_that_leaves_cancels_the_apps_request(string version)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app => app.MapGet("/wait", async (HttpContext context) =>
        {
            await context.Response.WriteAsync("started\n");
            await context.Response.Body.FlushAsync();
            started.TrySetResult();
            try
            {
                await Task.Delay(TimeSpan.FromMinutes(1), context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aborted.TrySetResult();
            }
        }));

        // No draining on dispose: the visitor closes its connection (HTTP/1.1) or resets its stream (HTTP/2) at once.
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0, ResponseDrainTimeout = TimeSpan.Zero });
        using var leave = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/wait")
        {
            Version = Version.Parse(version),
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Headers = { Host = TunnelHarness.Hostname },
        };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, leave.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var left = System.Diagnostics.Stopwatch.StartNew();
        await leave.CancelAsync();
        response.Dispose();
        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(left.Elapsed < TimeSpan.FromSeconds(1), $"the app's request was cancelled {left.Elapsed.TotalMilliseconds:0} ms after the visitor left");
    }

    [Fact]
    public async Task An_origin_that_dies_mid_response_breaks_the_visitors_response_instead_of_ending_it_cleanly()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app => app.MapGet("/cut", async (HttpContext context) =>
        {
            context.Response.ContentLength = 1_000_000;
            await context.Response.WriteAsync("partial");
            await context.Response.Body.FlushAsync();
            context.Abort();
        }));

        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--http1.1", harness.VisitorUrl("/cut")], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, result.ExitCode);
    }

    [Theory]
    [InlineData("--http1.1")]
    [InlineData("--http2-prior-knowledge")]
    public async Task Repeated_fields_pass_both_ways_and_hop_by_hop_ones_do_not(string protocolFlag)
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app => app.MapGet("/fields", (HttpContext context) =>
        {
            var response = context.Response;
            response.Headers.Append("Set-Cookie", "a=1; Path=/");
            response.Headers.Append("Set-Cookie", "b=2; Path=/");
            response.Headers["X-App"] = "one";
            response.Headers["Cache-Control"] = "no-store";
            var request = context.Request.Headers;
            return Results.Text(
                $"multi={string.Join("|", request["X-Multi"].ToArray())}\n" +
                $"cookie={request.Cookie}\n" +
                $"agent={request.UserAgent}\n" +
                $"secret={request["X-Hop"]}\n" +
                $"te={request.TE}\n");
        }));

        // Two lines of one field, two cookies, and a field the visitor's Connection header names as hop-by-hop.
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--fail", "-D", "-", protocolFlag,
            "-H", "X-Multi: first", "-H", "X-Multi: second", "-H", "Cookie: c=3; d=4", "-H", "User-Agent: fields-test/1",
            "-H", "Connection: X-Hop", "-H", "X-Hop: must-not-pass", harness.VisitorUrl("/fields")], TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        var lines = result.Stdout.Split('\n', StringSplitOptions.TrimEntries);

        // Both cookies as two Set-Cookie fields, in order; the app's other fields once each.
        var cookies = lines.Where(l => l.StartsWith("set-cookie:", StringComparison.OrdinalIgnoreCase)).Select(l => l[(l.IndexOf(':') + 1)..].Trim()).ToArray();
        Assert.Equal(["a=1; Path=/", "b=2; Path=/"], cookies);
        Assert.Single(lines, l => l.Equals("x-app: one", StringComparison.OrdinalIgnoreCase));
        Assert.Single(lines, l => l.Equals("cache-control: no-store", StringComparison.OrdinalIgnoreCase));

        // The app saw both values of the repeated field, the cookies and the agent; not the hop-by-hop field.
        Assert.Contains("multi=first|second", lines);
        Assert.Contains("cookie=c=3; d=4", lines);
        Assert.Contains("agent=fields-test/1", lines);
        if (protocolFlag == "--http1.1")
        {
            Assert.Contains("secret=", lines);
        }
        else
        {
            // HTTP/2 has no Connection header (curl leaves it out), so X-Hop is an ordinary field there.
            Assert.Contains("secret=must-not-pass", lines);
        }
    }
}
