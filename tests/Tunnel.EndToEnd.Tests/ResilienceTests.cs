using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Hosting;
using Tunnel.Transport;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

public class ResilienceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Four_connections_land_on_at_least_two_edges_and_two_regions()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Region = "r1");
        var second = await harness.StartExtraEdgeAsync("edge-b", "r1");
        var third = await harness.StartExtraEdgeAsync("edge-c", "r2");
        EdgeServer[] edges = [harness.Edge, second, third];

        await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t => t.Edges = [.. edges.Select(e => $"127.0.0.1:{e.TunnelEndPoint.Port}")]);
        await Wait.UntilAsync(() => edges.Sum(e => e.Routes.ConnectionCount) == 4, TimeSpan.FromSeconds(20), "4 connections are registered");

        var used = edges.Where(e => e.Routes.ConnectionCount > 0).ToArray();
        output.WriteLine(string.Join(", ", edges.Select(e => $"{e.Options.Name}/{e.Options.Region}: {e.Routes.ConnectionCount}")));
        Assert.True(used.Length >= 2, "the connections use fewer than two edges");
        Assert.Equal(2, used.Select(e => e.Options.Region).Distinct().Count());
    }

    [Fact]
    public async Task A_request_sent_on_a_tunnel_connection_the_edge_has_just_closed_fails_as_not_processed_so_it_is_retried()
    {
        // The forwarder picks a connection, then sends on it; the edge may close that connection in
        // between (a reset tunnel). The send must then fail the way the forwarder retries on another
        // connection (not processed), not with an ObjectDisposedException that became a bare 500 for a
        // GET in the soak.
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();
        var connection = harness.Edge.Routes.Connections().First();
        await connection.DisposeAsync();

        using var request = new HttpRequestMessage(HttpMethod.Get, Tunnel.Edge.Tunnels.TunnelConnection.RequestUriPrefix + "/");
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => connection.Invoker.SendAsync(request, CancellationToken.None));
        Assert.Equal(HttpRequestError.ConnectionError, error.HttpRequestError);
        Assert.Contains("closed", error.Message, StringComparison.Ordinal);

        // The visitor never sees it: the other connections serve.
        using var client = new HttpClient();
        for (var i = 0; i < 20; i++)
        {
            using var visit = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/") { Headers = { Host = TunnelHarness.Hostname } };
            using var response = await client.SendAsync(visit);
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task A_black_holed_connection_is_replaced_within_10_seconds_and_the_others_are_untouched()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var proxy = FaultProxy.Start(harness.Edge.TunnelEndPoint);
        var origin = await harness.StartOriginAsync(configureTunnel: t => t.Edges = [$"127.0.0.1:{proxy.EndPoint.Port}"]);

        var before = harness.Edge.Routes.Connections().ToArray();
        Assert.Equal(4, before.Length);
        await Wait.UntilAsync(() => proxy.Links.Count == 4, TimeSpan.FromSeconds(5), "the proxy carries the 4 tunnels");

        var faultAt = DateTime.UtcNow;
        proxy.Links[0].BlackHole();

        // The edge stops choosing the silent tunnel within the heartbeat limit (2.5 s)...
        await Wait.UntilAsync(() => before.Count(c => !c.IsUsable) >= 1, TimeSpan.FromSeconds(5), "the edge notices the silent tunnel");
        output.WriteLine(string.Join(", ", before.Select(c => $"{c.Id}: silent {c.IsSilent}, draining {c.IsDraining}, closed {c.Closed.IsCompleted}")));
        Assert.Equal(1, before.Count(c => !c.IsUsable));
        var silentAfter = DateTime.UtcNow - faultAt;
        var victim = before.Single(c => !c.IsUsable);

        // ...so from then on every visitor request goes to a healthy tunnel, until the replacement is up.
        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2);
        using var dump = new DumpOnFailure(output, () => string.Join("\n", origin.Logs.Entries.Where(e => e.Category.StartsWith("Tunnel", StringComparison.Ordinal)).Select(e => $"{e.At:HH:mm:ss.fff} {e.EventId.Name} {e.Message}")));
        await Wait.UntilAsync(
            () => !harness.Edge.Routes.Connections().Contains(victim) && harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4,
            TimeSpan.FromSeconds(10) - (DateTime.UtcNow - faultAt),
            "the black-holed tunnel is replaced within 10 s of the fault");
        var replacedAfter = DateTime.UtcNow - faultAt;

        // And on through the replacement's first moments.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await load.StopAsync();

        output.WriteLine($"silent after {silentAfter.TotalMilliseconds:0} ms, replaced after {replacedAfter.TotalMilliseconds:0} ms, {load.Succeeded} requests meanwhile");
        Assert.Empty(load.Failures);
        Assert.True(load.Succeeded > 0);
        Assert.All(before.Where(c => c != victim), c => Assert.Contains(c, harness.Edge.Routes.Connections()));
    }

    [Fact]
    public async Task Rolling_restart_of_one_of_two_replicas_under_load_fails_no_request()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var first = await harness.StartOriginAsync();
        await harness.StartOriginAsync(waitForConnections: false);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(20), "both replicas are connected");

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 6);
        var started = DateTime.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(1));

        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            await first.App.StopAsync(stop.Token);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await harness.StartOriginAsync(waitForConnections: false);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(20), "the restarted replica is connected again");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await load.StopAsync();
        var rate = load.Succeeded / (DateTime.UtcNow - started).TotalSeconds;

        output.WriteLine($"{load.Succeeded} requests, {rate:0} per second, {load.Failures.Count} failed");
        Assert.Empty(load.Failures);
        Assert.True(rate >= 200, $"the load ran at {rate:0} requests per second, below the 200 the test needs");
    }

    [Fact]
    public async Task Killing_one_of_two_edges_moves_all_connections_to_the_other_within_2_seconds()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var doomed = await EdgeProcess.StartAsync(harness.Pki, "doomed", "r2");
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
            t.Edges = [$"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}", $"127.0.0.1:{doomed.TunnelPort}"]);
        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount == 2 && origin.Logs.Entries.Count(e => e.EventId.Name == "Registered") == 4, TimeSpan.FromSeconds(20), "the connections spread over both edges");

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2);
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        var killedAt = DateTime.UtcNow;
        doomed.Process.Kill(entireProcessTree: true);

        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(2), "4 connections are back on the surviving edge within 2 s");
        output.WriteLine($"restored after {(DateTime.UtcNow - killedAt).TotalMilliseconds:0} ms");
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await load.StopAsync();
        Assert.Empty(load.Failures);
        Assert.True(load.Succeeded > 0);
    }

    [Fact]
    public async Task An_edge_restarted_after_a_kill_gets_half_the_connections_back_one_at_a_time_without_a_failed_request()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var comeback = await RestartableEdge.StartAsync(harness.Pki, "comeback", "r2");
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
        {
            t.Edges = [$"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}", $"127.0.0.1:{comeback.TunnelPort}"];
            t.RebalanceInterval = TimeSpan.FromSeconds(1);
            t.EdgeCoolDown = TimeSpan.FromSeconds(1);
        });
        var status = origin.App.Services.GetRequiredService<ITunnelStatus>();
        int Count(string eventName) => origin.Logs.Entries.Count(e => e.EventId.Name == eventName);
        string[] OnEdge(string name) => status.Slots.Where(s => s.IsRegistered && s.EdgeName == name).Select(s => s.TunnelConnectionId!).Order().ToArray();
        var survivor = harness.Edge.Options.Name;
        await Wait.UntilAsync(() => OnEdge(survivor).Length == 2 && OnEdge("comeback").Length == 2, TimeSpan.FromSeconds(20), "the connections spread over both edges");

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2);
        await comeback.KillAsync();
        await Wait.UntilAsync(() => OnEdge(survivor).Length == 4 && harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(10), "4 connections on the surviving edge");
        var settled = OnEdge(survivor);

        // While the other edge is down, each check tries it once its cool-down has passed, fails,
        // and leaves every connection where it is.
        var failedBefore = Count("RebalanceFailed");
        await Wait.UntilAsync(() => Count("RebalanceFailed") >= failedBefore + 2, TimeSpan.FromSeconds(15), "two moves to the dead edge tried and failed");
        Assert.Equal(settled, OnEdge(survivor));
        Assert.Equal(0, Count("Rebalancing"));
        Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "RebalanceFailed" && e.Message.Contains($"127.0.0.1:{comeback.TunnelPort}", StringComparison.Ordinal));

        // The edge comes back where it was: two connections move to it, each dialed and registered
        // there before the old one closes, and then the spread is even and nothing more moves.
        await comeback.RestartAsync();
        await Wait.UntilAsync(() => OnEdge("comeback").Length == 2 && OnEdge(survivor).Length == 2 && harness.Edge.Routes.ConnectionCount == 2, TimeSpan.FromSeconds(20), "two connections are back on the restarted edge");
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await load.StopAsync();

        output.WriteLine(string.Join("\n", origin.Logs.Entries.Where(e => e.Category.StartsWith("Tunnel", StringComparison.Ordinal)).Select(e => $"{e.At:HH:mm:ss.fff} {e.EventId.Name} {e.Message}")));
        Assert.Equal(2, Count("Rebalancing"));
        Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "Rebalancing" && e.Message.Contains($"to 127.0.0.1:{comeback.TunnelPort} (comeback), which held 0 connection(s) against 4 here", StringComparison.Ordinal));
        Assert.Equal(2, OnEdge("comeback").Length);
        Assert.Equal(4, status.RegisteredConnections);
        Assert.Empty(load.Failures);
        Assert.True(load.Succeeded > 0);
    }

    [Fact]
    public async Task An_edge_that_refuses_with_retry_after_is_not_redialed_before_that_time()
    {
        // MaxTunnelConnections 0: every registration is refused as overloaded, retry after 5 s.
        await using var harness = await TunnelHarness.StartAsync(o => o.MaxTunnelConnections = 0);
        var origin = await harness.StartOriginAsync(waitForConnections: false);

        await Wait.UntilAsync(() => Refusals().Length >= 1, TimeSpan.FromSeconds(10), "the first refusal");
        var first = Refusals()[0];
        await Wait.UntilAsync(() => Refusals().Any(r => r - first >= TimeSpan.FromSeconds(5)), TimeSpan.FromSeconds(10), "the slots try again after the retry-after");
        var refusals = Refusals();
        output.WriteLine(string.Join(", ", refusals.Select(r => $"{(r - first).TotalMilliseconds:0} ms")));
        output.WriteLine(string.Join("\n", origin.Logs.Entries.Where(e => e.Category.StartsWith("Tunnel", StringComparison.Ordinal)).Select(e => $"{e.At:HH:mm:ss.fff} {e.EventId.Name} {e.Message}")));

        // Slots already dialing when the first refusal came may be refused together with it; after
        // that, nothing until the retry-after has passed.
        Assert.All(refusals, r => Assert.True(r - first < TimeSpan.FromMilliseconds(500) || r - first >= TimeSpan.FromSeconds(5), $"redialed {(r - first).TotalMilliseconds:0} ms after the refusal"));
        Assert.Contains(refusals, r => r - first >= TimeSpan.FromSeconds(5));

        DateTime[] Refusals() => harness.EdgeLogs.Entries.Where(e => e.EventId.Name == "RegistrationRefused").Select(e => e.At).Order().ToArray();
    }

    [Fact]
    public async Task Edge_sigterm_moves_the_origin_to_the_other_edge_before_exiting_and_fails_no_request_there()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var draining = await EdgeProcess.StartAsync(harness.Pki, "draining", "r2");
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
            t.Edges = [$"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}", $"127.0.0.1:{draining.TunnelPort}"]);
        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount == 2 && origin.Logs.Entries.Count(e => e.EventId.Name == "Registered") == 4, TimeSpan.FromSeconds(20), "the connections spread over both edges");

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2);
        DateTime? fourAt = null;
        var watch = Task.Run(async () =>
        {
            while (!draining.Process.HasExited)
            {
                if (fourAt is null && harness.Edge.Routes.Connections().Count(c => c.IsUsable) >= 4)
                {
                    fourAt = DateTime.UtcNow;
                }

                await Task.Delay(10);
            }
        });

        await draining.TerminateAsync();
        await draining.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var exitedAt = DateTime.UtcNow;
        await watch;
        await load.StopAsync();

        output.WriteLine(draining.Output);
        Assert.True(fourAt is not null, "the origin never had 4 connections on the other edge while the draining edge ran");
        Assert.True(fourAt < exitedAt);
        Assert.Equal(0, draining.Process.ExitCode);
        Assert.Empty(load.Failures);
        Assert.Equal(4, harness.Edge.Routes.Connections().Count(c => c.IsUsable));
    }

    [Fact]
    public async Task Stopping_the_app_drains_its_tunnels_and_finishes_an_open_event_stream()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync();
        var connections = harness.Edge.Routes.Connections().ToArray();

        // 20 events, one per 100 ms: the stream is still open when the app is told to stop.
        using var curl = Cli.StartStreaming("curl", [.. harness.CurlResolve(), "-sS", "-N", "--max-time", "30", harness.VisitorUrl("/stream?count=20")]);
        var events = 0;
        while (await curl.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal) && ++events == 1)
            {
                break;
            }
        }

        using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stopping = origin.App.StopAsync(stopTimeout.Token);

        // The edge stops choosing every connection at once, while the stream still runs.
        await Wait.UntilAsync(() => connections.All(c => !c.IsUsable), TimeSpan.FromSeconds(1), "the edge stops choosing the draining connections");
        Assert.Equal(1, connections.Sum(c => c.InFlight));

        while (await curl.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events++;
            }
        }

        await curl.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await stopping;
        Assert.Equal(0, curl.ExitCode);
        Assert.Equal(20, events);
        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount == 0, TimeSpan.FromSeconds(5), "the drained connections close");
    }

    [Fact]
    public async Task A_request_the_origin_may_have_processed_is_never_sent_again()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var calls = 0;
        void MapCrash(Microsoft.AspNetCore.Builder.WebApplication app) => app.MapPost("/crash", (Microsoft.AspNetCore.Http.HttpContext context) =>
        {
            Interlocked.Increment(ref calls);
            context.Abort();
        });

        // Two replicas: another tunnel is there to retry on, yet the request must not be repeated.
        await harness.StartOriginAsync(configureApp: MapCrash);
        await harness.StartOriginAsync(waitForConnections: false, configureApp: MapCrash);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(20), "both replicas are connected");

        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "-w", "\n%{http_code}", "--data-binary", "pay once", harness.VisitorUrl("/crash")], TimeSpan.FromSeconds(30));
        Assert.EndsWith("502", result.Stdout.TrimEnd(), StringComparison.Ordinal);
        Assert.Equal(1, Volatile.Read(ref calls));
    }

    private sealed class DumpOnFailure(ITestOutputHelper output, Func<string> dump) : IDisposable
    {
        public void Dispose() => output.WriteLine(dump());
    }
}
