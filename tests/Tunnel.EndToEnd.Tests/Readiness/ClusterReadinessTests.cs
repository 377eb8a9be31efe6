using System.Net;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Readiness;

/// <summary>Readiness across a cluster: etcd and two <c>tunnel-edge serve</c> processes, one replica on each.</summary>
public class ClusterReadinessTests(ITestOutputHelper output)
{
    private const string Host = "hello.test";

    [Fact]
    public async Task An_edge_whose_tunnels_are_not_ready_sends_its_visitors_to_a_peer_with_a_ready_one_and_with_none_ready_both_answer_503_not_ready()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var edgeA = await cluster.StartEdgeAsync("edge-a", "r1");
        var edgeB = await cluster.StartEdgeAsync("edge-b", "r2");
        var a = new ReadinessReplica("replica-a");
        var b = new ReadinessReplica("replica-b");
        await cluster.StartOriginAsync(Host, [edgeA], haConnections: 2, configureApp: a.CountRequests, configureTunnel: a.ConfigureTunnel, configureBuilder: a.AddReadinessCheck);
        await cluster.StartOriginAsync(Host, [edgeB], haConnections: 2, configureApp: b.CountRequests, configureTunnel: b.ConfigureTunnel, configureBuilder: b.AddReadinessCheck);
        using var visitor = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await EdgeCluster.UntilAsync(async () => await ServedAsync(visitor, edgeA) && await ServedAsync(visitor, edgeB) && a.Requests > 0 && b.Requests > 0, TimeSpan.FromSeconds(20), "each edge serves the app through its own replica");

        a.Ready = false;
        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(edgeA), "tunnel_edge_tunnels_not_ready") == 2, TimeSpan.FromSeconds(5), "edge A marks replica A's tunnels not ready");
        var (aBefore, bBefore) = (a.Requests, b.Requests);
        for (var i = 0; i < 20; i++)
        {
            var (status, body) = await EdgeCluster.GetAsync(visitor, edgeA, Host, "/");
            Assert.True(status == HttpStatusCode.OK, $"request {i} at edge A: {(int)status} {body}");
        }

        Assert.Equal(aBefore, a.Requests);
        Assert.True(b.Requests >= bBefore + 20, "replica B, through edge B, served edge A's visitors");

        b.Ready = false;
        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(edgeB), "tunnel_edge_tunnels_not_ready") == 2, TimeSpan.FromSeconds(5), "edge B marks replica B's tunnels not ready");
        foreach (var edge in new[] { edgeA, edgeB })
        {
            var (status, body) = await EdgeCluster.GetAsync(visitor, edge, Host, "/");
            output.WriteLine(body);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Contains("hello.test is not ready", body, StringComparison.Ordinal);
        }

        a.Ready = true;
        await EdgeCluster.UntilAsync(async () => await ServedAsync(visitor, edgeA) && await ServedAsync(visitor, edgeB), TimeSpan.FromSeconds(5), "replica A serves both edges' visitors once it is ready");
    }

    private static async Task<bool> ServedAsync(HttpClient visitor, EdgeProcess edge) =>
        (await EdgeCluster.GetAsync(visitor, edge, Host, "/")).Status == HttpStatusCode.OK;
}
