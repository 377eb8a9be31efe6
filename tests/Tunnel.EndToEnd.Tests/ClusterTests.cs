using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
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
        await cluster.StartOriginAsync(Host, [a], configureApp: app => app.MapGet("/traceparent", (HttpContext context) => context.Request.Headers["traceparent"].ToString()));
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

        // The visitor's trace reaches the app through both edges (each edge's span in between).
        const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        using (var traced = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{c.VisitorPort}/traceparent"))
        {
            traced.Headers.Host = Host;
            traced.Headers.Add("traceparent", $"00-{TraceId}-00f067aa0ba902b7-01");
            using var answer = await visitor.SendAsync(traced);
            var received = await answer.Content.ReadAsStringAsync();
            output.WriteLine($"the app got traceparent {received}");
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.StartsWith($"00-{TraceId}-", received, StringComparison.Ordinal);
            Assert.DoesNotContain("00f067aa0ba902b7", received, StringComparison.Ordinal);
        }

        // A visitor who sends the hop marker is still a visitor: forwarded as usual.
        using (var spoofed = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{c.VisitorPort}/"))
        {
            spoofed.Headers.Host = Host;
            spoofed.Headers.Add("X-Tunnel-Edge-Hop", "edge-b");
            using var answer = await visitor.SendAsync(spoofed);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        }

        // A peer's round trip is first measured up to a second after it is known, and forwarding does
        // not wait for it; poll the scrape (bounded) until B has measured A.
        var metricsB = await EdgeCluster.MetricsAsync(b);
        for (var scrape = 0; scrape < 20 && EdgeCluster.Series(metricsB, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-a")) is null; scrape++)
        {
            await Task.Delay(500);
            metricsB = await EdgeCluster.MetricsAsync(b);
        }

        var metricsA = await EdgeCluster.MetricsAsync(a);
        Assert.True(EdgeCluster.Series(metricsB, "tunnel_edge_cluster_forwarded_total", ("tunnel_peer_name", "edge-a"), ("outcome", "forwarded")) >= 3, metricsB);
        Assert.True(EdgeCluster.Series(metricsA, "tunnel_edge_cluster_received_total", ("tunnel_peer_name", "edge-c")) >= 3, metricsA);
        Assert.NotNull(EdgeCluster.Series(metricsB, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-a")));
        Assert.Equal(2, EdgeCluster.Series(metricsB, "tunnel_edge_cluster_peers"));
        Assert.Equal(1, EdgeCluster.Series(metricsB, "tunnel_edge_cluster_store_connected"));

        // The status page lists the peers, their round trips, routes and forwarded requests.
        using (var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
        {
            var page = await admin.GetStringAsync($"http://127.0.0.1:{b.AdminPort}/");
            Assert.Contains("<h2>Cluster</h2>", page, StringComparison.Ordinal);
            Assert.Contains("<code>edge-a</code>", page, StringComparison.Ordinal);
            Assert.Contains("<code>edge-c</code>", page, StringComparison.Ordinal);
            Assert.Contains("<code>hello.test</code>", page, StringComparison.Ordinal);
            Assert.Matches(@"<code>edge-a</code></td><td>r1</td><td>127\.0\.0\.1:\d+</td><td class=""n"">\d+\.\d ms</td><td>reachable</td><td><code>hello\.test</code></td><td class=""n"">[1-9]\d*</td>", page);
        }

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

    [Fact]
    public async Task When_the_edge_holding_the_tunnel_dies_requests_elsewhere_succeed_again_within_the_lease_TTL_and_its_routes_are_gone()
    {
        const double LeaseTtl = 3;
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var a = await cluster.StartEdgeAsync("edge-a", "r1", LeaseTtl);
        var b = await cluster.StartEdgeAsync("edge-b", "r1", LeaseTtl);
        var c = await cluster.StartEdgeAsync("edge-c", "r2", LeaseTtl);

        // One connection, to whichever of A and B the origin finds nearer; the other is where it redials.
        await cluster.StartOriginAsync(Host, [a, b], haConnections: 1);
        EdgeProcess? holder = null;
        await EdgeCluster.UntilAsync(async () =>
        {
            foreach (var edge in new[] { a, b })
            {
                if (EdgeCluster.Series(await EdgeCluster.MetricsAsync(edge), "tunnel_edge_tunnels") == 1)
                {
                    holder = edge;
                    return true;
                }
            }

            return false;
        }, TimeSpan.FromSeconds(20), "the origin's connection is registered at A or B");
        var spare = holder == a ? b : a;
        var holderName = holder == a ? "edge-a" : "edge-b";
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, c, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "C serves the app through the holder");

        var killedAt = DateTime.UtcNow;
        holder!.Process.Kill(entireProcessTree: true);
        var failuresMeanwhile = 0;
        TimeSpan? servedAgainAfter = null;
        var bound = TimeSpan.FromSeconds(LeaseTtl + 1);
        while (DateTime.UtcNow - killedAt < bound + TimeSpan.FromSeconds(10))
        {
            var (status, body) = await EdgeCluster.GetAsync(visitor, c, Host, "/headers");
            if (status == HttpStatusCode.OK)
            {
                using var seen = JsonDocument.Parse(body);
                Assert.NotEqual(holderName, seen.RootElement.GetProperty("edge").GetString());
                servedAgainAfter = DateTime.UtcNow - killedAt;
                break;
            }

            failuresMeanwhile++;
            await Task.Delay(50);
        }

        output.WriteLine($"C served again {servedAgainAfter?.TotalMilliseconds:0} ms after the kill ({failuresMeanwhile} failed requests meanwhile); bound {bound.TotalMilliseconds:0} ms");
        Assert.NotNull(servedAgainAfter);
        Assert.True(servedAgainAfter <= bound, $"C served again only after {servedAgainAfter.Value.TotalMilliseconds:0} ms, over the lease TTL + 1 s");

        // From then on every request succeeds, through the spare.
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await EdgeCluster.GetAsync(visitor, c, Host, "/")).Status);
        }

        // And none of the dead edge's keys outlives its lease: not in etcd, not in C's copy.
        var wait = killedAt + bound - DateTime.UtcNow;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait);
        }

        var keys = await cluster.Etcd.RangeAsync("/tunnel/");
        output.WriteLine(string.Join("\n", keys.Select(k => k.Key)));
        Assert.DoesNotContain(keys, k => k.Key.EndsWith("/" + holderName, StringComparison.Ordinal));
        Assert.Contains(keys, k => k.Key == $"/tunnel/routes/{Host}/{(spare == a ? "edge-a" : "edge-b")}");
        var metricsC = await EdgeCluster.MetricsAsync(c);
        Assert.Null(EdgeCluster.Series(metricsC, "tunnel_edge_cluster_peer_routes", ("tunnel_peer_name", holderName)));
        Assert.Equal(1, EdgeCluster.Series(metricsC, "tunnel_edge_cluster_peer_routes", ("tunnel_peer_name", spare == a ? "edge-a" : "edge-b")));
    }

    [Fact]
    public async Task With_etcd_down_existing_routes_serve_without_a_failure_and_a_new_origin_is_served_where_it_landed_then_everywhere_once_etcd_is_back()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        var c = await cluster.StartEdgeAsync("edge-c", "r3");
        await cluster.StartOriginAsync(Host, [a]);
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);
        foreach (var edge in new[] { a, b, c })
        {
            await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, edge, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), $"the edge on {edge.VisitorPort} serves the app");
        }

        await using var loadAtB = Load.Start(b.VisitorPort, Host, workers: 2, maxDuration: TimeSpan.FromSeconds(90));
        await using var loadAtC = Load.Start(c.VisitorPort, Host, workers: 2, maxDuration: TimeSpan.FromSeconds(90));
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await cluster.Etcd.KillAsync();
        var downAt = DateTime.UtcNow;
        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(c), "tunnel_edge_cluster_store_connected") == 0, TimeSpan.FromSeconds(10), "C notices etcd is gone");

        // A new app lands on B during the outage: B serves it at once from its own tunnels; C cannot
        // know of it yet.
        const string NewHost = "new.test";
        await cluster.StartOriginAsync(NewHost, [b]);
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, b, NewHost, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "B serves the new app during the outage");
        Assert.Equal(HttpStatusCode.BadGateway, (await EdgeCluster.GetAsync(visitor, c, NewHost, "/")).Status);

        // Longer than the lease TTL (3 s) without etcd.
        var outage = TimeSpan.FromSeconds(6) - (DateTime.UtcNow - downAt);
        if (outage > TimeSpan.Zero)
        {
            await Task.Delay(outage);
        }

        await cluster.Etcd.RestartAsync();
        cluster.StoreProxy.Target = new IPEndPoint(IPAddress.Loopback, cluster.Etcd.ClientPort);
        var backAt = DateTime.UtcNow;
        output.WriteLine($"etcd was down {(backAt - downAt).TotalSeconds:0.0} s");
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, c, NewHost, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(15), "C serves the new app once etcd is back");
        output.WriteLine($"C served the new app {(DateTime.UtcNow - backAt).TotalMilliseconds:0} ms after etcd came back");

        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await loadAtB.StopAsync();
        await loadAtC.StopAsync();
        output.WriteLine($"{loadAtB.Succeeded} requests at B and {loadAtC.Succeeded} at C through the outage");
        Assert.Empty(loadAtB.Failures);
        Assert.Empty(loadAtC.Failures);
        Assert.True(loadAtB.Succeeded > 0 && loadAtC.Succeeded > 0);
    }

    [Fact]
    public async Task Forwarding_follows_the_measured_round_trip_to_the_peers()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);

        // A and B tell the cluster to reach them through a fault proxy each, so one path can be slowed.
        var unused = new IPEndPoint(IPAddress.Loopback, 9);
        await using var toA = FaultProxy.Start(unused);
        await using var toB = FaultProxy.Start(unused);
        var a = await cluster.StartEdgeAsync("edge-a", "r1", advertise: $"127.0.0.1:{toA.EndPoint.Port}");
        var b = await cluster.StartEdgeAsync("edge-b", "r2", advertise: $"127.0.0.1:{toB.EndPoint.Port}");
        toA.Target = new IPEndPoint(IPAddress.Loopback, a.PeerPort);
        toB.Target = new IPEndPoint(IPAddress.Loopback, b.PeerPort);
        var c = await cluster.StartEdgeAsync("edge-c", "r3");
        await cluster.StartOriginAsync(Host, [a, b]);
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);
        await EdgeCluster.UntilAsync(async () =>
        {
            var metrics = await EdgeCluster.MetricsAsync(c);
            return EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_routes", ("tunnel_peer_name", "edge-a")) == 1
                && EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_routes", ("tunnel_peer_name", "edge-b")) == 1
                && EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-a")) is not null
                && EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", "edge-b")) is not null;
        }, TimeSpan.FromSeconds(20), "C knows both routes and has measured both peers");

        // Slow one path, then the other: C's traffic moves each time to the peer with the shorter trip.
        foreach (var (slowed, slowProxy, fastProxy, expected) in new[] { ("edge-a", toA, toB, "edge-b"), ("edge-b", toB, toA, "edge-a") })
        {
            fastProxy.Delay = TimeSpan.Zero;
            slowProxy.Delay = TimeSpan.FromMilliseconds(100);
            var slowedAt = DateTime.UtcNow;
            var inARow = 0;
            await EdgeCluster.UntilAsync(async () =>
            {
                var (status, body) = await EdgeCluster.GetAsync(visitor, c, Host, "/headers");
                using var seen = JsonDocument.Parse(body);
                inARow = status == HttpStatusCode.OK && seen.RootElement.GetProperty("edge").GetString() == expected ? inARow + 1 : 0;
                return inARow >= 10;
            }, TimeSpan.FromSeconds(30), $"C's requests all go to {expected} once the path to {slowed} is slower");
            // The gauge shows the smoothed round trip, which can trail the samples the choice was just
            // made on by a probe or two; give it a bounded few seconds to agree.
            double? slowRtt = null, fastRtt = null;
            for (var scrape = 0; scrape < 20 && !(slowRtt > fastRtt); scrape++)
            {
                if (scrape > 0)
                {
                    await Task.Delay(500);
                }

                var metrics = await EdgeCluster.MetricsAsync(c);
                slowRtt = EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", slowed));
                fastRtt = EdgeCluster.Series(metrics, "tunnel_edge_cluster_peer_rtt_seconds", ("tunnel_peer_name", expected));
            }

            output.WriteLine($"{slowed} slowed: traffic on {expected} after {(DateTime.UtcNow - slowedAt).TotalMilliseconds:0} ms; RTT {slowed} {slowRtt * 1000:0.0} ms, {expected} {fastRtt * 1000:0.0} ms");
            Assert.True(slowRtt > fastRtt, $"C measures {slowed} at {slowRtt} s, not slower than {expected} at {fastRtt} s");
        }
    }

    [Fact]
    public async Task An_origin_discovering_its_edges_by_SRV_dials_only_the_listed_edges_and_the_cluster_serves_it_at_the_others()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        var c = await cluster.StartEdgeAsync("edge-c", "r3");

        // The SRV set lists A and B only; C is in the cluster but not in DNS.
        const string SrvName = "_tunnel._tcp.example.test";
        using var dns = await Dnsmasq.StartAsync(ttl: 2, [
            $"--srv-host={SrvName},edge-a.example.test,{a.TunnelPort},0,10",
            $"--srv-host={SrvName},edge-b.example.test,{b.TunnelPort},0,10",
            "--host-record=edge-a.example.test,127.0.0.1",
            "--host-record=edge-b.example.test,127.0.0.1",
        ]);
        await cluster.StartOriginAsync(Host, [], configureTunnel: tunnel =>
        {
            tunnel.Edges = ["srv:" + SrvName];
            tunnel.DnsServers = [dns.EndPoint.ToString()];
        });

        double Tunnels(string metrics) => EdgeCluster.Series(metrics, "tunnel_edge_tunnels") ?? 0;
        double atA = 0, atB = 0;
        await EdgeCluster.UntilAsync(async () =>
        {
            atA = Tunnels(await EdgeCluster.MetricsAsync(a));
            atB = Tunnels(await EdgeCluster.MetricsAsync(b));
            return atA + atB == 4;
        }, TimeSpan.FromSeconds(30), "the origin's 4 connections are registered at the SRV targets");
        output.WriteLine($"connections: A {atA}, B {atB}");
        Assert.True(atA > 0 && atB > 0, $"the connections did not spread over both SRV targets (A {atA}, B {atB})");
        Assert.Equal(0, Tunnels(await EdgeCluster.MetricsAsync(c)));

        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);
        foreach (var (edge, name) in new[] { (a, "edge-a"), (b, "edge-b") })
        {
            var (status, body) = await EdgeCluster.GetAsync(visitor, edge, Host, "/headers");
            Assert.Equal(HttpStatusCode.OK, status);
            using var seen = JsonDocument.Parse(body);
            Assert.Equal(name, seen.RootElement.GetProperty("edge").GetString());
        }

        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, c, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(15), "C serves the app through A or B");
        var forwardedBefore = ForwardedFrom(await EdgeCluster.MetricsAsync(c));
        for (var i = 0; i < 5; i++)
        {
            var (status, body) = await EdgeCluster.GetAsync(visitor, c, Host, "/headers");
            Assert.Equal(HttpStatusCode.OK, status);
            using var seen = JsonDocument.Parse(body);
            Assert.Contains(seen.RootElement.GetProperty("edge").GetString(), new[] { "edge-a", "edge-b" });
            Assert.Equal("127.0.0.7", seen.RootElement.GetProperty("remoteIp").GetString());
        }

        var metricsC = await EdgeCluster.MetricsAsync(c);
        Assert.Equal(forwardedBefore + 5, ForwardedFrom(metricsC));
        Assert.Equal(0, Tunnels(metricsC));

        static double ForwardedFrom(string metrics) =>
            (EdgeCluster.Series(metrics, "tunnel_edge_cluster_forwarded_total", ("tunnel_peer_name", "edge-a"), ("outcome", "forwarded")) ?? 0)
            + (EdgeCluster.Series(metrics, "tunnel_edge_cluster_forwarded_total", ("tunnel_peer_name", "edge-b"), ("outcome", "forwarded")) ?? 0);
    }

    [Fact]
    public async Task A_forwarded_visitors_requests_count_against_the_rate_limit_of_the_edge_they_came_to_only()
    {
        // Each edge limits the visitors that come to it: Burst 6, refilled at one permit per 100 s, so
        // 6 requests fit exactly once per edge within the test.
        const int Burst = 6;
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var config = Path.Combine(cluster.Pki.Directory, "rate-limited.json");
        await File.WriteAllTextAsync(config, $$"""{ "Edge": { "Hosts": { "{{Host}}": { "RateLimit": { "PermitsPerSecond": 0.01, "Burst": {{Burst}} } } } } }""");
        var a = await cluster.StartEdgeAsync("edge-a", "r1", configPath: config);
        var b = await cluster.StartEdgeAsync("edge-b", "r2", configPath: config);
        await cluster.StartOriginAsync(Host, [a]);

        // Wait for B to know the route without spending the visitor's permits: other addresses ask,
        // a fresh one for every attempt, since the probes count against B's limit too and B may
        // take more than a burst's worth of attempts to learn the route.
        var probes = 0;
        await EdgeCluster.UntilAsync(async () =>
        {
            probes++;
            using var probe = EdgeCluster.VisitorClient(new IPAddress([127, 0, (byte)(8 + (probes / 250)), (byte)(1 + (probes % 250))]));
            return (await EdgeCluster.GetAsync(probe, b, Host, "/")).Status == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(20), "B serves the app through A");
        output.WriteLine($"B served the app after {probes} probe(s)");

        // The visitor spends B's burst (forwarded to A), then A's burst directly. Were forwarded
        // requests counted at A too, A's bucket would be empty by then and refuse every direct one.
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);
        var atB = new List<HttpStatusCode>();
        var atA = new List<HttpStatusCode>();
        for (var i = 0; i < Burst; i++)
        {
            atB.Add((await EdgeCluster.GetAsync(visitor, b, Host, "/")).Status);
        }

        for (var i = 0; i < Burst; i++)
        {
            atA.Add((await EdgeCluster.GetAsync(visitor, a, Host, "/")).Status);
        }

        output.WriteLine($"at B (forwarded): {string.Join(", ", atB)}; at A (direct): {string.Join(", ", atA)}");
        Assert.All(atB, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.All(atA, s => Assert.Equal(HttpStatusCode.OK, s));

        // The limit still holds at each edge, for the visitors that come to it.
        Assert.Equal(HttpStatusCode.TooManyRequests, (await EdgeCluster.GetAsync(visitor, a, Host, "/")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await EdgeCluster.GetAsync(visitor, b, Host, "/")).Status);

        // A visitor posing as an edge with the hop marker on a visitor port is still checked.
        using (var spoofed = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{a.VisitorPort}/"))
        {
            spoofed.Headers.Host = Host;
            spoofed.Headers.Add("X-Tunnel-Edge-Hop", "edge-b");
            using var answer = await visitor.SendAsync(spoofed);
            Assert.Equal(HttpStatusCode.TooManyRequests, answer.StatusCode);
        }

        Assert.True(EdgeCluster.Series(await EdgeCluster.MetricsAsync(a), "tunnel_edge_cluster_received_total", ("tunnel_peer_name", "edge-b")) >= Burst);
    }

    [Fact]
    public async Task Edges_share_routes_through_an_etcd_that_requires_TLS_and_client_certificates_and_one_without_a_certificate_says_why_it_is_out()
    {
        await using var cluster = await EdgeCluster.StartAsync(tlsStore: true);
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        Assert.StartsWith("https://", cluster.Etcd.ClientUrl, StringComparison.Ordinal);
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        // A longer lease gives etcd's calls 2 s: etcd answers a missing certificate after about 1 s.
        var outsider = await cluster.StartEdgeAsync("edge-x", "r3", leaseTtlSeconds: 6, storeCertificate: false);
        await cluster.StartOriginAsync(Host, [a]);
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);

        // B learns A's route through etcd over TLS, and serves the app through one hop.
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, b, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "B serves the app through A");
        var keys = await cluster.Etcd.RangeAsync("/tunnel/");
        Assert.Contains(keys, pair => pair.Key.Contains("edge-a", StringComparison.Ordinal));
        Assert.DoesNotContain(keys, pair => pair.Key.Contains("edge-x", StringComparison.Ordinal));

        // The edge without a client certificate is refused by etcd, keeps serving its own tunnels
        // (none), and its log names the TLS failure.
        // A first attempt may time out instead; the log names each new reason while etcd stays out of reach.
        await EdgeCluster.UntilAsync(() => Task.FromResult(outsider.Output.Contains("bad certificate", StringComparison.Ordinal)), TimeSpan.FromSeconds(20), "the edge without a certificate logs etcd's refusal");
        var line = outsider.Output.Split('\n').First(l => l.Contains("bad certificate", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.Contains("etcd is out of reach", line, StringComparison.Ordinal);
        Assert.NotEqual(HttpStatusCode.OK, (await EdgeCluster.GetAsync(visitor, outsider, Host, "/")).Status);
    }

    [Fact]
    public async Task Edges_log_in_to_an_etcd_with_authentication_again_after_it_restarts_and_a_wrong_password_is_named()
    {
        // Over TLS: an edge refuses to send a password to a plain http:// etcd.
        await using var cluster = await EdgeCluster.StartAsync(tlsStore: true, storePassword: "correct horse");
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        // A longer lease gives etcd's calls 2 s: a login (bcrypt) on a busy machine can take over 1 s.
        var outsider = await cluster.StartEdgeAsync("edge-x", "r3", leaseTtlSeconds: 6, storePassword: "battery staple");
        await cluster.StartOriginAsync(Host, [a]);
        using var visitor = EdgeCluster.VisitorClient(VisitorAddress);
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, b, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "B serves the app through A");

        // The wrong password is refused by etcd, and the edge's log says so (never the password).
        // A first attempt may time out instead; the log names each new reason while etcd stays out of reach.
        await EdgeCluster.UntilAsync(() => Task.FromResult(outsider.Output.Contains("refused the login of user 'root'", StringComparison.Ordinal)), TimeSpan.FromSeconds(20), "the edge with the wrong password logs etcd's refusal");
        var line = outsider.Output.Split('\n').First(l => l.Contains("etcd is out of reach", StringComparison.Ordinal) && l.Contains("refused the login", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.Contains("refused the login of user 'root'", line, StringComparison.Ordinal);
        Assert.DoesNotContain("battery staple", outsider.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(await cluster.Etcd.RangeAsync("/tunnel/"), pair => pair.Key.Contains("edge-x", StringComparison.Ordinal));

        // etcd keeps its users but forgets its tokens when it restarts: the edges log in again, and a
        // second app that lands on B meanwhile is served at A too.
        await cluster.Etcd.KillAsync();
        await cluster.Etcd.RestartAsync();
        cluster.StoreProxy.Target = new IPEndPoint(IPAddress.Loopback, cluster.Etcd.ClientPort);
        const string NewHost = "new.test";
        await cluster.StartOriginAsync(NewHost, [b]);
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, a, NewHost, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "A serves the new app through B after etcd's restart");
    }

    [Fact]
    public async Task Store_certificates_for_plain_http_etcd_a_missing_file_or_a_user_without_password_stop_the_edge_at_start_with_the_reason()
    {
        using var pki = new TestPki();
        var plain = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--dir", pki.Directory, "--listen", "127.0.0.1",
            "--tunnel-port", "0", "--http-port", "0", "--admin-port", "-1", "--name", "edge-a", "--etcd", "http://127.0.0.1:2379", "--etcd-ca", pki.CaPath], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, plain.ExitCode);
        Assert.Contains("StoreCaPath and StoreCertificatePath are for https:// etcd endpoints", plain.Stdout + plain.Stderr, StringComparison.Ordinal);

        var missing = Path.Combine(pki.Directory, "no-such-client.pem");
        var absent = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--dir", pki.Directory, "--listen", "127.0.0.1",
            "--tunnel-port", "0", "--http-port", "0", "--admin-port", "-1", "--name", "edge-a", "--etcd", "https://127.0.0.1:2379", "--etcd-cert", missing], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, absent.ExitCode);
        Assert.Contains("Edge:Cluster:StoreCertificatePath", absent.Stdout + absent.Stderr, StringComparison.Ordinal);
        Assert.Contains(missing, absent.Stdout + absent.Stderr, StringComparison.Ordinal);

        var userOnly = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--dir", pki.Directory, "--listen", "127.0.0.1",
            "--tunnel-port", "0", "--http-port", "0", "--admin-port", "-1", "--name", "edge-a", "--etcd", "http://127.0.0.1:2379", "--etcd-user", "root"], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, userOnly.ExitCode);
        Assert.Contains("Edge:Cluster:StoreUsername is set without StorePassword", userOnly.Stdout + userOnly.Stderr, StringComparison.Ordinal);
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
}
