using System.Diagnostics;
using System.Net;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests.Discovery;

/// <summary>
/// The DNS client and SRV discovery against a real dnsmasq on 127.0.0.1 (a free high port, UDP and TCP).
/// </summary>
public sealed class DnsmasqDiscoveryTests : IDisposable
{
    private const string Name = "_tunnel._tcp.example.test";

    // Timeouts kept short so the timeout tests are quick; loopback answers take well under a millisecond.
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromMilliseconds(300);

    // For lookups that dnsmasq answers: no test times these, and on a loaded machine dnsmasq has been
    // slower than two 0.3 s tries (a CI run failed that way), so they wait as the product would.
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(2);

    private readonly List<IDisposable> _servers = [];

    public void Dispose()
    {
        foreach (var server in _servers)
        {
            server.Dispose();
        }
    }

    [Fact]
    public async Task Resolves_SRV_targets_with_their_addresses_from_the_additional_section()
    {
        var dnsmasq = await StartAsync(
            Srv("edge1.example.test", 7844, priority: 0, weight: 10),
            Srv("edge2.example.test", 7845, priority: 1, weight: 5),
            "--host-record=edge1.example.test,127.0.0.1,::1",
            "--host-record=edge2.example.test,127.0.0.2");
        var resolver = Resolver(AnswerTimeout, dnsmasq.EndPoint);

        var result = await resolver.ResolveSrvAsync(Name, CancellationToken.None);

        var byHost = result.Targets.ToDictionary(t => t.Host);
        Assert.Equal(2, byHost.Count);
        Assert.Equal((7844, 0, 10), (byHost["edge1.example.test"].Port, byHost["edge1.example.test"].Priority, byHost["edge1.example.test"].Weight));
        Assert.Equal([IPAddress.Parse("127.0.0.1"), IPAddress.IPv6Loopback], byHost["edge1.example.test"].Addresses);
        Assert.Equal((7845, 1, 5), (byHost["edge2.example.test"].Port, byHost["edge2.example.test"].Priority, byHost["edge2.example.test"].Weight));
        Assert.Equal([IPAddress.Parse("127.0.0.2")], byHost["edge2.example.test"].Addresses);
        Assert.Equal(TimeSpan.FromSeconds(dnsmasq.Ttl), result.Ttl);
    }

    [Fact]
    public async Task Looks_up_A_and_AAAA_separately_for_targets_the_answer_gives_no_address_for()
    {
        // dnsmasq adds no additional records for a CNAME target or an --address name.
        var dnsmasq = await StartAsync(
            Srv("alias.example.test", 7844),
            Srv("wild.example.test", 7845),
            Srv("missing.example.test", 7846),
            "--cname=alias.example.test,edge1.example.test",
            "--host-record=edge1.example.test,127.0.0.1,::1",
            "--address=/wild.example.test/127.0.0.9");

        var result = await Resolver(AnswerTimeout, dnsmasq.EndPoint).ResolveSrvAsync(Name, CancellationToken.None);

        var byHost = result.Targets.ToDictionary(t => t.Host);
        Assert.Equal([IPAddress.Parse("127.0.0.1"), IPAddress.IPv6Loopback], byHost["alias.example.test"].Addresses);
        Assert.Equal([IPAddress.Parse("127.0.0.9")], byHost["wild.example.test"].Addresses);
        // NXDOMAIN for the target: kept, to be resolved by name when dialed.
        Assert.Empty(byHost["missing.example.test"].Addresses);
    }

    [Fact]
    public async Task Reports_a_name_that_does_not_exist_as_NXDOMAIN_naming_the_server()
    {
        var dnsmasq = await StartAsync(Srv("edge1.example.test", 7844));

        var error = await Assert.ThrowsAsync<DnsResolutionException>(() => Resolver(AnswerTimeout, dnsmasq.EndPoint).ResolveSrvAsync("_nothing._tcp.example.test", CancellationToken.None));

        Assert.Equal("name_not_found", error.ErrorType);
        Assert.Contains("_nothing._tcp.example.test", error.Message, StringComparison.Ordinal);
        Assert.Contains("NXDOMAIN", error.Message, StringComparison.Ordinal);
        Assert.Contains(dnsmasq.EndPoint.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Falls_back_to_TCP_when_the_UDP_answer_is_truncated()
    {
        // 30 targets with long names: about 3 KB. dnsmasq is held to 512-byte UDP answers, so it sends a
        // truncated answer over UDP and the whole list can only arrive over TCP.
        var hosts = Enumerable.Range(1, 30).Select(i => $"edge-{i:00}-with-a-deliberately-long-label-to-fill-the-answer.region-{i:00}.example.test").ToArray();
        var dnsmasq = await StartAsync([.. hosts.SelectMany((host, i) => new[] { Srv(host, 7844), $"--host-record={host},127.0.0.{i + 1}" }), "--edns-packet-max=512"]);
        var resolver = Resolver(AnswerTimeout, dnsmasq.EndPoint);

        var result = await resolver.ResolveSrvAsync(Name, CancellationToken.None);

        Assert.Equal(hosts.Order(), result.Targets.Select(t => t.Host).Order());
        Assert.All(result.Targets, t => Assert.Equal([IPAddress.Parse($"127.0.0.{Array.IndexOf(hosts, t.Host) + 1}")], t.Addresses));
    }

    [Fact]
    public async Task Tries_the_next_server_when_the_first_never_answers_and_asks_the_one_that_answered_first_next_time()
    {
        var silent = Silent();
        var dnsmasq = await StartAsync(Srv("edge1.example.test", 7844), "--host-record=edge1.example.test,127.0.0.1");
        var resolver = Resolver(ShortTimeout, silent.EndPoint, dnsmasq.EndPoint);

        var started = Stopwatch.GetTimestamp();
        var result = await resolver.ResolveSrvAsync(Name, CancellationToken.None);
        var firstLookup = Stopwatch.GetElapsedTime(started);

        Assert.Equal("edge1.example.test", Assert.Single(result.Targets).Host);
        Assert.Equal(1, silent.QueriesReceived);
        Assert.InRange(firstLookup, ShortTimeout - TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(3));

        // The silent server is not asked again: the one that answered goes first now.
        await resolver.ResolveSrvAsync(Name, CancellationToken.None);
        Assert.Equal(1, silent.QueriesReceived);
    }

    [Fact]
    public async Task Gives_up_within_attempts_times_servers_times_the_timeout_when_no_server_answers()
    {
        var (first, second) = (Silent(), Silent());
        var resolver = Resolver(ShortTimeout, first.EndPoint, second.EndPoint);

        var started = Stopwatch.GetTimestamp();
        var error = await Assert.ThrowsAsync<DnsResolutionException>(() => resolver.ResolveSrvAsync(Name, CancellationToken.None));
        var elapsed = Stopwatch.GetElapsedTime(started);

        // Two rounds over two servers.
        Assert.InRange(elapsed, (4 * ShortTimeout) - TimeSpan.FromMilliseconds(100), (4 * ShortTimeout) + TimeSpan.FromSeconds(2));
        Assert.Equal((2, 2), (first.QueriesReceived, second.QueriesReceived));
        Assert.Equal("timeout", error.ErrorType);
        Assert.Contains(first.EndPoint.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Contains(second.EndPoint.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Moves_on_to_the_next_server_when_one_refuses()
    {
        // Without records or a local zone, dnsmasq has no upstream for our name and answers REFUSED.
        var refusing = await Dnsmasq.StartAsync(ttl: 2, [], localZone: false);
        _servers.Add(refusing);
        var dnsmasq = await StartAsync(Srv("edge1.example.test", 7844), "--host-record=edge1.example.test,127.0.0.1");
        var refusingOnly = await Assert.ThrowsAsync<DnsResolutionException>(() => Resolver(AnswerTimeout, refusing.EndPoint).ResolveSrvAsync(Name, CancellationToken.None));
        Assert.Equal("refused", refusingOnly.ErrorType);
        Assert.Contains($"{refusing.EndPoint} answered REFUSED", refusingOnly.Message, StringComparison.Ordinal);

        var result = await Resolver(AnswerTimeout, refusing.EndPoint, dnsmasq.EndPoint).ResolveSrvAsync(Name, CancellationToken.None);

        Assert.Equal("edge1.example.test", Assert.Single(result.Targets).Host);
    }

    [Fact]
    public async Task Picks_up_edges_added_and_removed_in_DNS_after_the_TTL()
    {
        var time = new ManualTime();
        var dnsmasq = await StartAsync(
            Srv("edge1.example.test", 7844, priority: 0),
            Srv("edge2.example.test", 7844, priority: 1),
            "--host-record=edge1.example.test,127.0.0.1",
            "--host-record=edge2.example.test,127.0.0.2");
        var resolver = Resolver(AnswerTimeout, dnsmasq.EndPoint);
        var discovery = new SrvEdgeDiscovery(Name, resolver, fallback: null, time, cacheFloor: TimeSpan.FromSeconds(1));

        Assert.Equal(["edge1.example.test", "edge2.example.test"], (await discovery.GetEdgesAsync(CancellationToken.None)).Select(e => e.Host));

        // edge1 leaves, edge3 joins.
        dnsmasq = await RestartAsync(dnsmasq,
            Srv("edge2.example.test", 7844, priority: 1),
            Srv("edge3.example.test", 7844, priority: 0),
            "--host-record=edge2.example.test,127.0.0.2",
            "--host-record=edge3.example.test,127.0.0.3");

        time.Advance(TimeSpan.FromSeconds(dnsmasq.Ttl) - TimeSpan.FromMilliseconds(1));
        Assert.Equal(["edge1.example.test", "edge2.example.test"], (await discovery.GetEdgesAsync(CancellationToken.None)).Select(e => e.Host));

        time.Advance(TimeSpan.FromMilliseconds(1));
        var edges = await discovery.GetEdgesAsync(CancellationToken.None);
        Assert.Equal(["edge3.example.test", "edge2.example.test"], edges.Select(e => e.Host));
        Assert.Equal([IPAddress.Parse("127.0.0.3")], edges[0].Addresses);
        Assert.Null(discovery.LastError);
    }

    [Fact]
    public async Task Keeps_the_last_good_list_when_the_DNS_server_goes_away()
    {
        var time = new ManualTime();
        var dnsmasq = await StartAsync(Srv("edge1.example.test", 7844), "--host-record=edge1.example.test,127.0.0.1");
        var discovery = new SrvEdgeDiscovery(Name, Resolver(ShortTimeout, dnsmasq.EndPoint), fallback: null, time, cacheFloor: TimeSpan.FromSeconds(1));
        var good = await discovery.GetEdgesAsync(CancellationToken.None);

        dnsmasq.Stop();
        time.Advance(TimeSpan.FromSeconds(dnsmasq.Ttl));
        var started = Stopwatch.GetTimestamp();
        var afterFailure = await discovery.GetEdgesAsync(CancellationToken.None);

        Assert.Same(good, afterFailure);
        var error = Assert.IsType<DnsResolutionException>(discovery.LastError);
        Assert.Contains(dnsmasq.EndPoint.ToString(), error.Message, StringComparison.Ordinal);
        Assert.InRange(Stopwatch.GetElapsedTime(started), TimeSpan.Zero, (2 * ShortTimeout) + TimeSpan.FromSeconds(2));
    }

    private static string Srv(string target, int port, int priority = 0, int weight = 10) => $"--srv-host={Name},{target},{port},{priority},{weight}";

    private static DnsSrvResolver Resolver(TimeSpan timeout, params IPEndPoint[] servers)
    {
        var options = new DnsResolverOptions { Timeout = timeout, Attempts = 2 };
        foreach (var server in servers)
        {
            options.Servers.Add(server);
        }

        return new DnsSrvResolver(options);
    }

    private async Task<Dnsmasq> StartAsync(params string[] records)
    {
        var dnsmasq = await Dnsmasq.StartAsync(ttl: 2, records);
        _servers.Add(dnsmasq);
        return dnsmasq;
    }

    private async Task<Dnsmasq> RestartAsync(Dnsmasq dnsmasq, params string[] records)
    {
        var restarted = await dnsmasq.RestartAsync(records);
        _servers.Add(restarted);
        return restarted;
    }

    private ScriptedDnsServer Silent()
    {
        var server = new ScriptedDnsServer();
        _servers.Add(server);
        return server;
    }
}
