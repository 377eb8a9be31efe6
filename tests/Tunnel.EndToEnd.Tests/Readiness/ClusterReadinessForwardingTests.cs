using System.Net;
using System.Text.Json;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Testing;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Readiness;

/// <summary>
/// Readiness across a cluster of three <c>tunnel-edge serve</c> processes on one etcd: each edge publishes,
/// per route, whether it holds a ready tunnel, and peers forward to an edge that does.
/// </summary>
public class ClusterReadinessForwardingTests(ITestOutputHelper output)
{
    private const string Host = "hello.test";
    private const int Requests = 50;

    [Fact]
    public async Task Visitors_at_any_edge_reach_the_one_edge_with_a_ready_tunnel_and_with_none_ready_get_503_not_ready()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);

        // C is reached through a slowed proxy, so to B the not-ready A is the nearer peer: forwarding by
        // round trip alone would send B's visitors to A.
        await using var toC = FaultProxy.Start(new IPEndPoint(IPAddress.Loopback, 9));
        var edgeA = await cluster.StartEdgeAsync("edge-a", "r1");
        var edgeB = await cluster.StartEdgeAsync("edge-b", "r2");
        var edgeC = await cluster.StartEdgeAsync("edge-c", "r3", advertise: $"127.0.0.1:{toC.EndPoint.Port}");
        toC.Target = new IPEndPoint(IPAddress.Loopback, edgeC.PeerPort);
        toC.Delay = TimeSpan.FromMilliseconds(20);
        var a = new ReadinessReplica("replica-a");
        var c = new ReadinessReplica("replica-c");
        await cluster.StartOriginAsync(Host, [edgeA], haConnections: 2, configureApp: a.CountRequests, configureTunnel: a.ConfigureTunnel, configureBuilder: a.AddReadinessCheck);
        await cluster.StartOriginAsync(Host, [edgeC], haConnections: 2, configureApp: c.CountRequests, configureTunnel: c.ConfigureTunnel, configureBuilder: c.AddReadinessCheck);
        using var visitor = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await EdgeCluster.UntilAsync(async () =>
        {
            var metrics = await EdgeCluster.MetricsAsync(edgeB);
            return EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_routes", ("tunnel_peer_name", "edge-a")) == 1
                && EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_routes", ("tunnel_peer_name", "edge-c")) == 1
                && EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-a")) < EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-c"));
        }, TimeSpan.FromSeconds(20), "B knows both routes and has measured A as the nearer peer");

        a.Ready = false;
        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(edgeA), "tunnel_edge_tunnels_not_ready") == 2, TimeSpan.FromSeconds(5), "edge A marks replica A's tunnels not ready");
        await UntilPublishedAsync(edgeB, "edge-a", ready: false, "B's status page shows A's route not ready");
        Assert.Equal(1, EdgeCluster.Series(await EdgeCluster.MetricsAsync(edgeB), "tunnel_edge_cluster_peer_routes_not_ready", ("tunnel_peer_name", "edge-a")));
        Assert.Equal(0, EdgeCluster.Series(await EdgeCluster.MetricsAsync(edgeB), "tunnel_edge_cluster_peer_routes_not_ready", ("tunnel_peer_name", "edge-c")));
        var keys = (await cluster.Etcd.RangeAsync("/tunnel/routes/")).ToDictionary(k => k.Key, k => k.Value);
        Assert.Equal("{\"ready\":false}", keys[$"/tunnel/routes/{Host}/edge-a"]);
        Assert.Equal("{\"ready\":true}", keys[$"/tunnel/routes/{Host}/edge-c"]);
        var (aBefore, cBefore) = (a.Requests, c.Requests);
        foreach (var (name, edge) in new[] { ("edge-b", edgeB), ("edge-a", edgeA) })
        {
            for (var i = 0; i < Requests; i++)
            {
                var (status, body) = await EdgeCluster.GetAsync(visitor, edge, Host, "/headers");
                Assert.True(status == HttpStatusCode.OK, $"request {i} at {name}: {(int)status} {body}");
                using var seen = JsonDocument.Parse(body);
                Assert.Equal("edge-c", seen.RootElement.GetProperty("edge").GetString());
            }
        }

        Assert.Equal(aBefore, a.Requests);
        Assert.True(c.Requests >= cBefore + (2 * Requests), "replica C, through edge C, served A's and B's visitors");

        c.Ready = false;
        await UntilPublishedAsync(edgeB, "edge-c", ready: false, "B's status page shows C's route not ready");
        foreach (var (name, edge) in new[] { ("edge-a", edgeA), ("edge-b", edgeB), ("edge-c", edgeC) })
        {
            var (status, body) = await EdgeCluster.GetAsync(visitor, edge, Host, "/");
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"at {name} with no replica ready: {(int)status} {body}");
            Assert.Contains("hello.test is not ready", body, StringComparison.Ordinal);
        }

        c.Ready = true;
        await EdgeCluster.UntilAsync(async () => await ServedAsync(visitor, edgeB) && await ServedAsync(visitor, edgeA), TimeSpan.FromSeconds(5), "replica C serves A's and B's visitors once it is ready again");
        await UntilPublishedAsync(edgeB, "edge-c", ready: true, "B's status page shows C's route ready again");
        for (var i = 0; i < 10; i++)
        {
            Assert.True(await ServedAsync(visitor, edgeB), $"request {i} at edge-b after C's recovery");
        }
    }

    /// <summary>Waits until an edge's status page shows a peer's route for <see cref="Host"/> as ready, or not ready.</summary>
    private static async Task UntilPublishedAsync(EdgeProcess at, string peer, bool ready, string what)
    {
        using var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var row = $"<code>{peer}</code></td>";
        var route = $"<code>{Host}</code>";
        await EdgeCluster.UntilAsync(async () =>
        {
            var page = await admin.GetStringAsync($"http://127.0.0.1:{at.AdminPort}/");
            var start = page.IndexOf(row, StringComparison.Ordinal);
            var end = start < 0 ? -1 : page.IndexOf("</tr>", start, StringComparison.Ordinal);
            if (end < 0)
            {
                return false;
            }

            var cells = page[start..end];
            return cells.Contains(route, StringComparison.Ordinal) && cells.Contains(route + " <span class=\"bad\">not ready</span>", StringComparison.Ordinal) != ready;
        }, TimeSpan.FromSeconds(5), what);
    }

    private static async Task<bool> ServedAsync(HttpClient visitor, EdgeProcess edge) =>
        (await EdgeCluster.GetAsync(visitor, edge, Host, "/")).Status == HttpStatusCode.OK;
}
