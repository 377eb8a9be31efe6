using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>Several edges as one network: real etcd, real edge processes, one hop between edges.</summary>
public class ClusterTests(ITestOutputHelper output)
{
    private const string Host = "hello.test";

    // A visitor address no edge uses, so the app can tell the visitor from the edges.
    private static readonly IPAddress VisitorAddress = IPAddress.Parse("127.0.0.7");

    [Fact]
    public async Task Visitors_at_edges_without_the_tunnel_get_the_apps_answers_through_one_hop_with_their_own_IP()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        var c = await cluster.StartEdgeAsync("edge-c", "r3");
        await cluster.StartOriginAsync(Host, [a]);
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);

        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, a, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "edge A serves the app");
        foreach (var edge in new[] { b, c })
        {
            await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, edge, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(10), $"edge on port {edge.VisitorPort} serves the app through A");
            var (status, body) = await EdgeCluster.GetAsync(visitor, edge, Host, "/headers");
            Assert.Equal(HttpStatusCode.OK, status);
            output.WriteLine(body);
            using var seen = JsonDocument.Parse(body);
            Assert.Equal("127.0.0.7", seen.RootElement.GetProperty("remoteIp").GetString());
            Assert.Equal("http", seen.RootElement.GetProperty("scheme").GetString());
            Assert.Equal(Host, seen.RootElement.GetProperty("host").GetString());
            Assert.Equal("edge-a", seen.RootElement.GetProperty("edge").GetString());
            Assert.Empty(seen.RootElement.GetProperty("forwardedHeaders").EnumerateObject());

            // A body both ways through the hop.
            var payload = new byte[200_000];
            Random.Shared.NextBytes(payload);
            using var post = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{edge.VisitorPort}/echo") { Content = new ByteArrayContent(payload) };
            post.Headers.Host = Host;
            using var echoed = await visitor.SendAsync(post);
            Assert.Equal(HttpStatusCode.OK, echoed.StatusCode);
            Assert.Equal(payload, await echoed.Content.ReadAsByteArrayAsync());
        }

        // A visitor who sends the hop marker is still a visitor: forwarded as usual.
        using (var spoofed = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{c.VisitorPort}/"))
        {
            spoofed.Headers.Host = Host;
            spoofed.Headers.Add("X-Tunnel-Edge-Hop", "edge-b");
            using var answer = await visitor.SendAsync(spoofed);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        }

        var metricsB = await EdgeCluster.MetricsAsync(b);
        var metricsA = await EdgeCluster.MetricsAsync(a);
        Assert.True(EdgeCluster.Series(metricsB, "tunnel_edge_cluster_forwarded_total", ("tunnel_peer_name", "edge-a"), ("outcome", "forwarded")) >= 3, metricsB);
        Assert.True(EdgeCluster.Series(metricsA, "tunnel_edge_cluster_received_total", ("tunnel_peer_name", "edge-c")) >= 3, metricsA);
        Assert.NotNull(EdgeCluster.Series(metricsB, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-a")));
        Assert.Equal(2, EdgeCluster.Series(metricsB, "tunnel_edge_cluster_peers"));

        // At most one hop: a forwarded request for a host B has no tunnel for is answered by B, never
        // sent on to A.
        using var asEdge = PeerClient(cluster.PeerCertificatePath, cluster.PeerKeyPath);
        using (var forwarded = new HttpRequestMessage(HttpMethod.Get, $"https://127.0.0.1:{b.PeerPort}/") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact })
        {
            forwarded.Headers.Add("X-Tunnel-Edge-Hop", "edge-c");
            forwarded.Headers.Add("X-Forwarded-For", "127.0.0.9");
            forwarded.Headers.Add("X-Forwarded-Proto", "http");
            forwarded.Headers.Add("X-Forwarded-Host", Host);
            using var answer = await asEdge.SendAsync(forwarded);
            Assert.Equal(HttpStatusCode.BadGateway, answer.StatusCode);
        }

        var receivedFromC = EdgeCluster.Series(await EdgeCluster.MetricsAsync(a), "tunnel_edge_cluster_received_total", ("tunnel_peer_name", "edge-c"));
        Assert.Equal(EdgeCluster.Series(metricsA, "tunnel_edge_cluster_received_total", ("tunnel_peer_name", "edge-c")), receivedFromC);

        // An origin's certificate (same CA, client use only) does not open the inter-edge port.
        var (originCertificate, originKey) = cluster.Pki.IssueOrigin(Host);
        using var asOrigin = PeerClient(originCertificate, originKey);
        await Assert.ThrowsAsync<HttpRequestException>(() => asOrigin.GetAsync($"https://127.0.0.1:{b.PeerPort}/.tunnel-edge/probe"));
    }

    private static HttpClient PeerClient(string certificatePath, string keyPath)
    {
        var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        return new HttpClient(new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [certificate],
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            },
        })
        { Timeout = TimeSpan.FromSeconds(15), DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
    }

    /// <summary>Writes the processes' output to the test log at the end, for when it fails.</summary>
    private sealed class WriteOnDispose(ITestOutputHelper output, Func<string> text) : IDisposable
    {
        public void Dispose() => output.WriteLine(text());
    }
}
