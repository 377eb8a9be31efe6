using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Transport;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Readiness;

/// <summary>
/// Routing that follows the app's readiness checks: real edge, real Kestrel replicas with a health check
/// tagged <c>ready</c>, steady visitor load.
/// </summary>
public class ReadinessRoutingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Traffic_leaves_a_replica_within_a_second_of_its_readiness_check_failing_and_returns_when_it_recovers_with_no_request_failing()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var a = new ReadinessReplica("replica-a");
        var b = new ReadinessReplica("replica-b");
        var originA = await StartReplicaAsync(harness, a);
        await StartReplicaAsync(harness, b);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(20), "both replicas are connected");

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 6, maxDuration: TimeSpan.FromSeconds(40));
        using var dump = new WriteOnDispose(output, () => $"A {a.Requests}, B {b.Requests} requests; {load.Succeeded} succeeded, failures: {string.Join("; ", load.Failures.Take(5))}");

        // The edge picks the connection with the fewest requests in flight, the first listed on a tie:
        // replica A, registered first, takes most of the load while it is ready.
        await Wait.UntilAsync(() => a.Requests > 100, TimeSpan.FromSeconds(10), "replica A takes requests");

        var failedAt = Stopwatch.GetTimestamp();
        a.Ready = false;
        await Wait.UntilAsync(() => ConnectionsOf(harness, a).Count(c => c.IsNotReady) == 4, TimeSpan.FromSeconds(2), "the edge marks replica A's 4 connections not ready");
        var markedAfter = Stopwatch.GetElapsedTime(failedAt);

        // A window well past a second in which the load goes on: A must see nothing after its first second.
        var bBefore = b.Requests;
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var lastAtA = Stopwatch.GetElapsedTime(failedAt, a.LastRequest);
        Assert.True(lastAtA < TimeSpan.FromSeconds(1), $"replica A still got a request {lastAtA.TotalMilliseconds:0} ms after its check failed");
        Assert.True(b.Requests > bBefore + 50, "replica B carries the traffic meanwhile");
        Assert.False(originA.App.Services.GetRequiredService<ITunnelStatus>().IsReady);
        Assert.Contains(originA.Logs.Entries, e => e.EventId.Name == "NotReady" && e.Message.Contains("warm-cache: the cache is being rebuilt", StringComparison.Ordinal));
        Assert.Equal(4, harness.EdgeLogs.Entries.Count(e => e.EventId.Name == "TunnelNotReady" && e.Message.Contains("replica-a", StringComparison.Ordinal)));

        var aBefore = a.Requests;
        var recoveredAt = Stopwatch.GetTimestamp();
        a.Ready = true;
        await Wait.UntilAsync(() => a.Requests > aBefore + 20, TimeSpan.FromSeconds(2), "replica A takes requests again");
        var backAfter = Stopwatch.GetElapsedTime(recoveredAt);
        await load.StopAsync();

        output.WriteLine($"edge marked A not ready after {markedAfter.TotalMilliseconds:0} ms, last request at A {lastAtA.TotalMilliseconds:0} ms after the check failed, back after {backAfter.TotalMilliseconds:0} ms; {load.Succeeded} requests");
        Assert.Empty(load.Failures);
        Assert.True(originA.App.Services.GetRequiredService<ITunnelStatus>().IsReady);
        Assert.Contains(originA.Logs.Entries, e => e.EventId.Name == "ReadyAgain");
        Assert.All(ConnectionsOf(harness, a), c => Assert.False(c.IsNotReady));
    }

    [Fact]
    public async Task With_every_replica_not_ready_the_edge_answers_503_naming_the_route_as_not_ready_and_keeps_the_tunnels()
    {
        var token = "test-token-" + Guid.NewGuid().ToString("N");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.AdminTokenPath = Path.Combine(Path.GetDirectoryName(o.CaCertificatePath)!, "admin.token");
            TestPki.WriteSecret(o.AdminTokenPath, token + "\n");
            o.AdminAllowedNetworks = ["127.0.0.1/32"];
        });
        var a = new ReadinessReplica("replica-a");
        var b = new ReadinessReplica("replica-b");
        await StartReplicaAsync(harness, a, haConnections: 2);
        await StartReplicaAsync(harness, b, haConnections: 2);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(20), "both replicas are connected");
        var before = harness.Edge.Routes.Connections().Select(c => c.Id).Order(StringComparer.Ordinal).ToArray();
        using var visitor = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        a.Ready = false;
        b.Ready = false;
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().All(c => c.IsNotReady), TimeSpan.FromSeconds(2), "every connection is marked not ready");

        using (var response = await GetAsync(visitor, harness))
        {
            var body = await response.Content.ReadAsStringAsync();
            output.WriteLine(body);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("hello.test is not ready", body, StringComparison.Ordinal);
            Assert.DoesNotContain("No origin is connected", body, StringComparison.Ordinal);
            Assert.NotNull(response.Headers.RetryAfter);
        }

        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "RouteNotReady" && e.Message.Contains("hello.test", StringComparison.Ordinal));
        var admin = $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}";
        var metrics = await visitor.GetStringAsync(admin + "/metrics");
        output.WriteLine(string.Join("\n", metrics.Split('\n').Where(l => l.Contains("not_ready", StringComparison.Ordinal))));
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_upstream_errors_total", ("error_type", "not_ready")) >= 1, "the 503 is counted as not_ready");
        Assert.Equal(4, EdgeCluster.Series(metrics, "tunnel_edge_tunnels_not_ready"));
        Assert.Equal(4, CountOccurrences(await visitor.GetStringAsync(admin + "/"), ">not ready</td>"));
        using (var request = new HttpRequestMessage(HttpMethod.Get, admin + "/api/v1/routes") { Headers = { { "Authorization", "Bearer " + token } } })
        using (var routes = await visitor.SendAsync(request))
        using (var document = JsonDocument.Parse(await routes.Content.ReadAsStringAsync()))
        {
            var connections = document.RootElement.GetProperty("routes")[0].GetProperty("connectors").EnumerateArray().SelectMany(c => c.GetProperty("connections").EnumerateArray()).ToArray();
            Assert.Equal(4, connections.Length);
            Assert.All(connections, c => Assert.True(c.GetProperty("notReady").GetBoolean()));
        }

        // Not ready is not silent: the beats go on, so past the edge's silence limit (2.5 s) nothing is
        // dropped or redialed, as with an edge that reads every beat as a heartbeat only.
        await Task.Delay(Tunnel.Protocol.TunnelLimits.AnchorSilenceLimit + TimeSpan.FromSeconds(0.5));
        Assert.All(harness.Edge.Routes.Connections(), c => Assert.False(c.IsSilent));
        Assert.Equal(before, harness.Edge.Routes.Connections().Select(c => c.Id).Order(StringComparer.Ordinal).ToArray());

        b.Ready = true;
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 2, TimeSpan.FromSeconds(2), "replica B's connections are chosen again");
        using (var response = await GetAsync(visitor, harness))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(0, a.Requests);
    }

    internal static Task<TunnelHarness.Origin> StartReplicaAsync(TunnelHarness harness, ReadinessReplica replica, int haConnections = 4) =>
        harness.StartOriginAsync(
            waitForConnections: false,
            configureTunnel: t =>
            {
                replica.ConfigureTunnel(t);
                t.HaConnections = haConnections;
            },
            configureBuilder: replica.AddReadinessCheck,
            configureApp: replica.CountRequests);

    private static Tunnel.Edge.Tunnels.TunnelConnection[] ConnectionsOf(TunnelHarness harness, ReadinessReplica replica) =>
        harness.Edge.Routes.Connections().Where(c => c.ConnectorId == replica.ConnectorId).ToArray();

    private static Task<HttpResponseMessage> GetAsync(HttpClient visitor, TunnelHarness harness) =>
        visitor.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/") { Headers = { Host = TunnelHarness.Hostname } });

    private static int CountOccurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
