using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Transport;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

public class SrvDiscoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_origin_finds_its_edges_through_an_SRV_record_served_by_dnsmasq()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Region = "r1");
        var second = await harness.StartExtraEdgeAsync("edge-b", "r2");
        using var dns = await Dnsmasq.StartAsync(ttl: 2, [
            $"--srv-host=_tunnel._tcp.example.test,edge-a.example.test,{harness.Edge.TunnelEndPoint.Port},0,10",
            $"--srv-host=_tunnel._tcp.example.test,edge-b.example.test,{second.TunnelEndPoint.Port},0,10",
            "--host-record=edge-a.example.test,127.0.0.1",
            "--host-record=edge-b.example.test,127.0.0.1",
        ]);

        await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
        {
            t.Edges = ["srv:_tunnel._tcp.example.test"];
            t.DnsServers = [dns.EndPoint.ToString()];
        });

        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount + second.Routes.ConnectionCount == 4, TimeSpan.FromSeconds(20), "4 connections over the SRV edges");
        Assert.True(harness.Edge.Routes.ConnectionCount > 0 && second.Routes.ConnectionCount > 0, "the connections did not spread over both SRV targets");

        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{second.VisitorEndPoint.Port}/") { Headers = { Host = TunnelHarness.Hostname } };
        using var response = await client.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task An_SRV_backup_edge_carries_the_connections_only_while_the_primary_is_down()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var primary = await RestartableEdge.StartAsync(harness.Pki, "primary", "r1");

        // RFC 2782: priority 10 before 20; the backup (the harness's in-process edge) is for when no
        // priority-10 edge can be reached.
        using var dns = await Dnsmasq.StartAsync(ttl: 2, [
            $"--srv-host=_tunnel._tcp.example.test,primary.example.test,{primary.TunnelPort},10,10",
            $"--srv-host=_tunnel._tcp.example.test,backup.example.test,{harness.Edge.TunnelEndPoint.Port},20,10",
            "--host-record=primary.example.test,127.0.0.1",
            "--host-record=backup.example.test,127.0.0.1",
        ]);
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
        {
            t.Edges = ["srv:_tunnel._tcp.example.test"];
            t.DnsServers = [dns.EndPoint.ToString()];
            t.RebalanceInterval = TimeSpan.FromSeconds(1);
            t.EdgeCoolDown = TimeSpan.FromSeconds(1);
        });
        var status = origin.App.Services.GetRequiredService<ITunnelStatus>();
        int On(string edgeName) => status.Slots.Count(s => s.IsRegistered && s.EdgeName == edgeName);

        await Wait.UntilAsync(() => On("primary") == 4, TimeSpan.FromSeconds(20), "4 connections on the priority-10 edge");
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal(4, On("primary"));
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);

        await primary.KillAsync();
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(10), "the backup takes the 4 connections");

        // The primary comes back where it was: every connection moves back to it, one at a time.
        await primary.RestartAsync();
        await Wait.UntilAsync(() => On("primary") == 4 && harness.Edge.Routes.ConnectionCount == 0, TimeSpan.FromSeconds(30), "the 4 connections are back on the priority-10 edge");
        output.WriteLine(string.Join("\n", origin.Logs.Entries.Where(e => e.Category.StartsWith("Tunnel", StringComparison.Ordinal)).Select(e => $"{e.At:HH:mm:ss.fff} {e.EventId.Name} {e.Message}")));
        Assert.Equal(4, origin.Logs.Entries.Count(e => e.EventId.Name == "Rebalancing"));

        // Two edges are known, so not FewEdges; but one edge failure drops every connection at once,
        // and the operator hears so, once (the listing did not change).
        Assert.DoesNotContain(origin.Logs.Entries, e => e.EventId.Name == "FewEdges");
        var lone = Assert.Single(origin.Logs.Entries, e => e.EventId.Name == "OneBestPriorityEdge");
        Assert.Equal(LogLevel.Warning, lone.Level);
        Assert.Contains($"All 4 tunnel connections go to primary.example.test:{primary.TunnelPort}, the only edge of the best SRV priority (10) of the 2 known", lone.Message, StringComparison.Ordinal);
        Assert.All(origin.Logs.Entries.Where(e => e.EventId.Name == "Rebalancing"), e =>
            Assert.Contains($"to primary.example.test:{primary.TunnelPort} (primary), whose SRV priority 10 comes before this edge's 20", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_a_DNS_answer_the_static_fallback_edges_are_used()
    {
        await using var harness = await TunnelHarness.StartAsync();

        // A dnsmasq that knows nothing of the name: NXDOMAIN.
        using var dns = await Dnsmasq.StartAsync(ttl: 2, ["--host-record=unrelated.example.test,127.0.0.1"]);
        var origin = await harness.StartOriginAsync(configureTunnel: t =>
        {
            t.Edges = ["srv:_tunnel._tcp.example.test", $"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}"];
            t.DnsServers = [dns.EndPoint.ToString()];
        });

        Assert.Equal(4, harness.Edge.Routes.ConnectionCount);
    }

    [Fact]
    public async Task A_failing_SRV_lookup_without_fallback_is_logged_and_retried_not_fatal()
    {
        await using var harness = await TunnelHarness.StartAsync();
        using var dns = await Dnsmasq.StartAsync(ttl: 2, ["--host-record=unrelated.example.test,127.0.0.1"]);
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
        {
            t.Edges = ["srv:_tunnel._tcp.example.test"];
            t.DnsServers = [dns.EndPoint.ToString()];
        });

        await Wait.UntilAsync(() => origin.Logs.Entries.Any(e => e.EventId.Name == "DialFailed" && e.Message.Contains("Discovery", StringComparison.Ordinal)), TimeSpan.FromSeconds(10), "the discovery failure is logged");
        var failure = origin.Logs.Entries.First(e => e.EventId.Name == "DialFailed" && e.Message.Contains("Discovery", StringComparison.Ordinal));
        Assert.Contains("_tunnel._tcp.example.test", failure.Message, StringComparison.Ordinal);
        Assert.False(origin.App.Lifetime.ApplicationStopping.IsCancellationRequested);
    }
}
