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
}
