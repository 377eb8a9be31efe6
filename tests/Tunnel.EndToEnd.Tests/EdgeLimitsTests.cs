using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Access;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class EdgeLimitsTests
{
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(30);
    private const string Host = TunnelHarness.Hostname;

    [Fact]
    public async Task Too_many_or_too_large_request_headers_get_431_and_never_reach_the_origin()
    {
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.Limits.MaxRequestHeaderCount = 20;
            o.Limits.MaxRequestHeadersTotalSize = 4096;
        });
        var seen = new OriginCounter();
        await harness.StartOriginAsync(configureApp: seen.Install);

        string[] many = [.. Enumerable.Range(0, 30).SelectMany(i => new[] { "-H", $"X-Extra-{i}: {i}" })];
        var tooMany = await Curl(harness, ["-H", "Accept: application/json", .. many, harness.VisitorUrl("/")]);
        tooMany.AssertEdgeError(431, Host, harness.EdgeLogs);

        var tooLarge = await Curl(harness, ["-H", "Accept: application/json", "-H", "X-Big: " + new string('a', 6000), harness.VisitorUrl("/")]);
        tooLarge.AssertEdgeError(431, Host, harness.EdgeLogs);

        // Far past the limit Kestrel stops reading before any middleware: still 431, still nothing at the origin.
        var huge = await Curl(harness, ["-H", "X-Huge: " + new string('a', 20_000), harness.VisitorUrl("/")]);
        Assert.Equal(431, huge.Status);
        Assert.Equal(0, seen.Count);

        // Within the limits the same request goes through.
        var fine = await Curl(harness, [.. many.Take(20), harness.VisitorUrl("/")]);
        Assert.Equal(200, fine.Status);
        Assert.Equal(1, seen.Count);
    }

    [Fact]
    public async Task A_body_over_the_hosts_limit_gets_413_naming_the_host_and_never_reaches_the_origin()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Hosts[Host] = new EdgeHostOptions { MaxRequestBodySize = 1000 });
        var seen = new OriginCounter();
        await harness.StartOriginAsync(configureApp: seen.Install);

        var tooLarge = await Curl(harness, ["-H", "Accept: application/json", "--data-binary", new string('x', 2000), harness.VisitorUrl("/echo")]);
        tooLarge.AssertEdgeError(413, Host, harness.EdgeLogs);
        Assert.Equal(0, seen.Count);

        var fits = await Curl(harness, ["--data-binary", new string('y', 1000), harness.VisitorUrl("/echo")]);
        Assert.Equal(200, fits.Status);
        Assert.Equal(new string('y', 1000), fits.Body);
    }

    [Fact]
    public async Task An_origin_slow_to_send_headers_gets_504_after_the_configured_timeout()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Limits.ResponseHeadersTimeout = TimeSpan.FromSeconds(1));
        var originGaveUp = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await harness.StartOriginAsync(configureApp: app => app.MapGet("/slow", async (HttpContext context) =>
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(20), context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                originGaveUp.TrySetResult();
            }
        }));

        var clock = Stopwatch.StartNew();
        var response = await Curl(harness, ["-H", "Accept: application/json", harness.VisitorUrl("/slow")]);
        clock.Stop();
        response.AssertEdgeError(504, Host, harness.EdgeLogs);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(8));

        // The edge reset the origin's stream, so the app stops working on a request nobody waits for.
        await originGaveUp.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // The timeout is on the headers only: a response that starts at once may stream for longer.
        var stream = await Curl(harness, ["-N", harness.VisitorUrl("/stream?count=15")]);
        Assert.Equal(200, stream.Status);
        Assert.Equal(15, stream.Body.Split('\n').Count(line => line.StartsWith("data: ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Requests_over_the_hosts_concurrency_cap_get_503_with_Retry_After()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Hosts[Host] = new EdgeHostOptions { MaxConcurrentRequests = 2 });
        var hold = new HoldEndpoint();
        await harness.StartOriginAsync(configureApp: hold.Install);

        var held = Enumerable.Range(0, 2).Select(_ => Curl(harness, [harness.VisitorUrl("/hold")])).ToArray();
        await Wait.UntilAsync(() => hold.Arrived == 2, TimeSpan.FromSeconds(10), "two requests are held in the app");

        var refused = await Curl(harness, ["-H", "Accept: application/json", harness.VisitorUrl("/hold")]);
        refused.AssertEdgeError(503, Host, harness.EdgeLogs);
        Assert.Equal("1", refused.Headers["Retry-After"]);
        Assert.Equal(2, hold.Arrived);

        hold.Release();
        foreach (var response in await Task.WhenAll(held))
        {
            Assert.Equal(200, response.Status);
        }

        // Capacity is back once they are done.
        Assert.Equal(200, (await Curl(harness, [harness.VisitorUrl("/")])).Status);
    }

    [Fact]
    public async Task When_every_tunnel_connection_is_at_its_cap_the_request_gets_503()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Limits.MaxConcurrentRequestsPerConnection = 1);
        var hold = new HoldEndpoint();
        await harness.StartOriginAsync(configureTunnel: t => t.HaConnections = 2, configureApp: hold.Install);

        // Two connections, one request each: the third finds both full.
        var held = Enumerable.Range(0, 2).Select(_ => Curl(harness, [harness.VisitorUrl("/hold")])).ToArray();
        await Wait.UntilAsync(() => hold.Arrived == 2, TimeSpan.FromSeconds(10), "two requests are held in the app");

        var refused = await Curl(harness, ["-H", "Accept: application/json", harness.VisitorUrl("/hold")]);
        refused.AssertEdgeError(503, Host, harness.EdgeLogs);
        Assert.Equal("1", refused.Headers["Retry-After"]);
        Assert.Equal(2, hold.Arrived);

        hold.Release();
        foreach (var response in await Task.WhenAll(held))
        {
            Assert.Equal(200, response.Status);
        }
    }

    [Fact]
    public async Task A_visitor_sending_its_body_too_slowly_is_cut_off_before_the_origin_sees_it()
    {
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.Limits.MinRequestBodyDataRate = 4000;
            o.Limits.MinDataRateGracePeriod = TimeSpan.FromSeconds(2);
        });
        var seen = new OriginCounter();
        await harness.StartOriginAsync(configureApp: seen.Install);

        // 20 KB at 1 KB/s would take 20 s; the edge gives up after the 2 s grace period and says so.
        var clock = Stopwatch.StartNew();
        var response = await Curl(harness, ["--limit-rate", "1000", "-H", "Expect:", "-H", "Accept: application/json",
            "--data-binary", new string('z', 20_000), harness.VisitorUrl("/echo")]);
        clock.Stop();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the slow upload ran {clock.Elapsed.TotalSeconds:0.0} s");
        response.AssertEdgeError(408, Host, harness.EdgeLogs);
        Assert.Equal(0, seen.Count);
    }

    private static async Task<EdgeErrorResponse> Curl(TunnelHarness harness, string[] arguments)
    {
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "-i", .. arguments], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        return EdgeErrorResponse.Parse(result.Stdout);
    }

    /// <summary>Counts the requests that reach the app.</summary>
    internal sealed class OriginCounter
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public void Install(WebApplication app) => app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref _count);
            await next(context);
        });
    }

    /// <summary>An app endpoint <c>/hold</c> that keeps every request open until released.</summary>
    private sealed class HoldEndpoint
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _arrived;

        public int Arrived => Volatile.Read(ref _arrived);

        public void Release() => _release.TrySetResult();

        public void Install(WebApplication app) => app.MapGet("/hold", async (HttpContext context) =>
        {
            Interlocked.Increment(ref _arrived);
            await _release.Task.WaitAsync(TimeSpan.FromSeconds(20), context.RequestAborted);
            return "released\n";
        });
    }
}
