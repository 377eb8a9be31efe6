using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace Tunnel.Faults;

/// <summary>
/// Origins that misbehave: never answer, answer slowly, reset streams, send huge headers, close
/// mid-body. The visitor gets a proper status (or, once the response began, a broken connection,
/// never a clean-looking truncated body), and another hostname on the same edge is unaffected.
/// </summary>
[Trait("Suite", "Fast")]
public class OriginFaultTests(ITestOutputHelper output)
{
    private const string Bad = "bad.test";
    private const string Good = TunnelHarness.Hostname;
    private static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task Each_misbehaviour_gets_its_status_and_the_other_hostname_is_served_throughout()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Limits.ResponseHeadersTimeout = HeadersTimeout);
        await harness.StartOriginAsync();
        await harness.StartOriginAsync(hostnames: [Bad], waitForConnections: false, configureApp: MapMisbehaviours);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(20), "both origins are connected");
        await using var load = Load.Start(harness.VisitorPort, Good, workers: 2);

        // Never answers: 504 from the edge after the response-headers timeout.
        var clock = Stopwatch.StartNew();
        var never = await CurlAsync(harness, "/never");
        never.AssertEdgeError(504, Bad, harness.EdgeLogs);
        Assert.InRange(clock.Elapsed, HeadersTimeout * 0.9, HeadersTimeout + TimeSpan.FromSeconds(8));

        // Answers slowly, but within the timeout: the answer.
        var slow = await CurlAsync(harness, "/slow");
        Assert.Equal(200, slow.Status);
        Assert.Equal("slow but sure\n", slow.Body);

        // Resets the stream before answering: 502 (and a GET the origin reset is its answer, not retried forever).
        var reset = await CurlAsync(harness, "/reset");
        reset.AssertEdgeError(502, Bad, harness.EdgeLogs);

        // Response headers larger than the edge accepts: 502, not a hang or a crash.
        var huge = await CurlAsync(harness, "/huge-headers");
        huge.AssertEdgeError(502, Bad, harness.EdgeLogs);

        // Closes mid-body: the response had begun, so the visitor's transfer must fail visibly.
        foreach (var path in (string[])["/mid-body-chunked", "/mid-body-length"])
        {
            var cut = await Cli.RunAsync("curl", [.. harness.CurlResolve(Bad), "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--max-time", "20", harness.VisitorUrl(path, Bad)], TimeSpan.FromSeconds(30));
            output.WriteLine($"{path}: {Cli.Describe(cut)}");
            Assert.True(cut.ExitCode is 18 or 56 or 92, $"{path}: a body cut by the origin reached the visitor as complete: {Cli.Describe(cut)}");
        }

        await load.StopAsync();
        output.WriteLine($"{load.Succeeded} requests for {Good} meanwhile, {load.Failures.Count} failed");
        Assert.Empty(load.Failures);
        Assert.True(load.Succeeded > 0);

        // And the misbehaving origin's tunnels are still there for its next request.
        Assert.Equal(200, (await CurlAsync(harness, "/slow")).Status);
    }

    private static void MapMisbehaviours(WebApplication app)
    {
        app.MapGet("/never", async (HttpContext context) =>
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
        app.MapGet("/slow", async (HttpContext context) =>
        {
            await Task.Delay(HeadersTimeout / 2, context.RequestAborted);
            return "slow but sure\n";
        });
        app.MapGet("/reset", (HttpContext context) => context.Abort());
        app.MapGet("/huge-headers", (HttpContext context) =>
        {
            for (var i = 0; i < 40; i++)
            {
                context.Response.Headers[$"X-Huge-{i}"] = new string('h', 8000);
            }

            return "unreachable\n";
        });
        app.MapGet("/mid-body-chunked", async (HttpContext context) =>
        {
            await context.Response.WriteAsync(new string('a', 10_000));
            await context.Response.Body.FlushAsync();
            await Task.Delay(200);
            context.Abort();
        });
        app.MapGet("/mid-body-length", async (HttpContext context) =>
        {
            context.Response.ContentLength = 100_000;
            await context.Response.WriteAsync(new string('b', 10_000));
            await context.Response.Body.FlushAsync();
            await Task.Delay(200);
            context.Abort();
        });
    }

    private static async Task<EdgeErrorResponse> CurlAsync(TunnelHarness harness, string path)
    {
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(Bad), "-sS", "-i", "-H", "Accept: application/json", "--max-time", "20", harness.VisitorUrl(path, Bad)], TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        return EdgeErrorResponse.Parse(result.Stdout);
    }
}
