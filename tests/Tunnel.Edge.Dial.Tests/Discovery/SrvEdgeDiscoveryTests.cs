using System.Net;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests.Discovery;

public class SrvEdgeDiscoveryTests
{
    private const string Name = "_tunnel._tcp.example.test";
    // Everything here completes in milliseconds; the bound only keeps a bug from hanging the run.
    private static readonly TimeSpan WaitBound = TimeSpan.FromSeconds(5);

    private static readonly SrvTarget Edge1 = new("edge1.example.test", 7844, 0, 10, [IPAddress.Parse("192.0.2.1")]);
    private static readonly SrvTarget Edge2 = new("edge2.example.test", 7844, 1, 10, [IPAddress.Parse("192.0.2.2"), IPAddress.Parse("2001:db8::2")]);
    private static readonly SrvTarget Edge3 = new("edge3.example.test", 7844, 2, 10, []);

    private readonly ManualTime _time = new();

    [Fact]
    public async Task Returns_the_targets_in_priority_order_with_their_addresses()
    {
        var resolver = new FakeSrvResolver().Answer(TimeSpan.FromMinutes(1), Edge3, Edge2, Edge1);
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);

        var edges = await discovery.GetEdgesAsync(CancellationToken.None);

        Assert.Equal([new("edge1.example.test", 7844), new("edge2.example.test", 7844), new EdgeAddress("edge3.example.test", 7844)], edges);
        Assert.Equal(Edge2.Addresses, edges[1].Addresses);
        Assert.Empty(edges[2].Addresses);
        Assert.Equal([Edge1.Priority, Edge2.Priority, Edge3.Priority], edges.Select(e => e.Priority));
    }

    [Fact]
    public async Task Serves_the_cached_answer_until_its_TTL_expires_then_looks_up_again()
    {
        var resolver = new FakeSrvResolver().Answer(TimeSpan.FromSeconds(30), Edge1).Answer(TimeSpan.FromSeconds(30), Edge2);
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);

        var first = await discovery.GetEdgesAsync(CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(29));
        var cached = discovery.GetEdgesAsync(CancellationToken.None);

        Assert.True(cached.IsCompletedSuccessfully, "a cached answer should come back synchronously");
        Assert.Same(first, await cached);
        Assert.Equal(1, resolver.Calls);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("edge2.example.test", Assert.Single(await discovery.GetEdgesAsync(CancellationToken.None)).Host);
        Assert.Equal(2, resolver.Calls);
    }

    [Fact]
    public async Task Keeps_an_answer_at_least_5_seconds_and_at_most_an_hour()
    {
        var resolver = new FakeSrvResolver().Answer(TimeSpan.Zero, Edge1).Answer(TimeSpan.FromDays(1), Edge2).Answer(TimeSpan.FromDays(1), Edge3);
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);

        await discovery.GetEdgesAsync(CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(4.9));
        await discovery.GetEdgesAsync(CancellationToken.None);
        Assert.Equal(1, resolver.Calls);

        _time.Advance(TimeSpan.FromSeconds(0.1));
        await discovery.GetEdgesAsync(CancellationToken.None);
        Assert.Equal(2, resolver.Calls);

        _time.Advance(TimeSpan.FromHours(1));
        Assert.Equal("edge3.example.test", Assert.Single(await discovery.GetEdgesAsync(CancellationToken.None)).Host);
        Assert.Equal(3, resolver.Calls);
    }

    [Fact]
    public async Task Keeps_the_last_good_list_when_a_refresh_fails_and_exposes_the_error()
    {
        var failure = new DnsResolutionException("timeout", "127.0.0.1:53 did not answer over UDP within 2 s");
        var resolver = new FakeSrvResolver().Answer(TimeSpan.FromSeconds(10), Edge1, Edge2).Fail(failure).Answer(TimeSpan.FromSeconds(10), Edge3);
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);
        var good = await discovery.GetEdgesAsync(CancellationToken.None);

        _time.Advance(TimeSpan.FromSeconds(10));
        var afterFailure = await discovery.GetEdgesAsync(CancellationToken.None);

        Assert.Same(good, afterFailure);
        Assert.Same(failure, discovery.LastError);

        // DNS is asked again 5 seconds after the failure, not on every call in between.
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.Same(good, await discovery.GetEdgesAsync(CancellationToken.None));
        Assert.Equal(2, resolver.Calls);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("edge3.example.test", Assert.Single(await discovery.GetEdgesAsync(CancellationToken.None)).Host);
        Assert.Null(discovery.LastError);
    }

    [Fact]
    public async Task Treats_an_answer_without_usable_targets_as_a_failed_refresh()
    {
        var resolver = new FakeSrvResolver().Answer(TimeSpan.FromSeconds(10), Edge1).Answer(TimeSpan.FromSeconds(10), new SrvTarget(".", 0, 0, 0, []));
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);
        await discovery.GetEdgesAsync(CancellationToken.None);

        _time.Advance(TimeSpan.FromSeconds(10));

        Assert.Equal("edge1.example.test", Assert.Single(await discovery.GetEdgesAsync(CancellationToken.None)).Host);
        var error = Assert.IsType<EdgeDiscoveryException>(discovery.LastError);
        Assert.Contains("service not available", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Uses_the_fallback_edges_while_DNS_has_never_answered()
    {
        var resolver = new FakeSrvResolver()
            .Fail(new DnsResolutionException("name_not_found", "The SRV name does not exist (NXDOMAIN)."))
            .Answer(TimeSpan.FromSeconds(10), Edge1);
        var fallback = new[] { EdgeAddress.Parse("static.example.test:7000") };
        var discovery = new SrvEdgeDiscovery(Name, resolver, fallback, _time);

        Assert.Equal(fallback, await discovery.GetEdgesAsync(CancellationToken.None));
        Assert.IsType<DnsResolutionException>(discovery.LastError);

        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal("edge1.example.test", Assert.Single(await discovery.GetEdgesAsync(CancellationToken.None)).Host);
    }

    [Fact]
    public async Task Throws_an_error_naming_the_SRV_name_when_DNS_fails_and_there_is_no_fallback()
    {
        var failure = new DnsResolutionException("server_failure", "127.0.0.1:53 answered SERVFAIL");
        var discovery = new SrvEdgeDiscovery(Name, new FakeSrvResolver().Fail(failure), timeProvider: _time);

        var error = await Assert.ThrowsAsync<EdgeDiscoveryException>(() => discovery.GetEdgesAsync(CancellationToken.None).AsTask());

        Assert.Contains(Name, error.Message, StringComparison.Ordinal);
        Assert.Contains("SERVFAIL", error.Message, StringComparison.Ordinal);
        Assert.Same(failure, error.InnerException);
    }

    [Fact]
    public async Task Concurrent_callers_share_one_lookup()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resolver = new FakeSrvResolver { Gate = gate }.Answer(TimeSpan.FromSeconds(10), Edge1, Edge2);
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);

        var callers = Enumerable.Range(0, 50).Select(_ => Task.Run(() => discovery.GetEdgesAsync(CancellationToken.None).AsTask())).ToArray();
        await WaitUntilAsync(() => resolver.Calls > 0);
        gate.SetResult();
        var results = await Task.WhenAll(callers).WaitAsync(WaitBound);

        Assert.Equal(1, resolver.Calls);
        Assert.All(results, edges => Assert.Same(results[0], edges));
    }

    [Fact]
    public async Task A_caller_that_gives_up_does_not_cancel_the_lookup_others_wait_for()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resolver = new FakeSrvResolver { Gate = gate }.Answer(TimeSpan.FromSeconds(10), Edge1);
        var discovery = new SrvEdgeDiscovery(Name, resolver, timeProvider: _time);
        using var impatient = new CancellationTokenSource();

        var givesUp = discovery.GetEdgesAsync(impatient.Token).AsTask();
        var waits = discovery.GetEdgesAsync(CancellationToken.None).AsTask();
        impatient.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => givesUp);
        gate.SetResult();

        Assert.Single(await waits.WaitAsync(WaitBound));
        Assert.Equal(1, resolver.Calls);
    }

    [Fact]
    public async Task EdgeSelector_spreads_slots_over_the_SRV_edges_with_one_lookup_while_cached()
    {
        var resolver = new FakeSrvResolver().Answer(TimeSpan.FromMinutes(1), Edge1, Edge2 with { Priority = 0 });
        var selector = new EdgeSelector(new SrvEdgeDiscovery(Name, resolver, timeProvider: _time), TimeSpan.FromSeconds(10), _time);

        var slots = new List<EdgeAddress>();
        for (var slot = 0; slot < 4; slot++)
        {
            slots.Add((await selector.SelectAsync(slot, CancellationToken.None)).Edge);
        }

        Assert.Equal(2, slots.Distinct().Count());
        Assert.Equal(slots[0], slots[2]);
        Assert.Equal(1, resolver.Calls);

        // A failed edge is set aside even though the SRV answer carries it with addresses.
        selector.ReportFailure(new EdgeAddress(slots[0].Host, slots[0].Port));
        Assert.Equal(slots[1], (await selector.SelectAsync(0, CancellationToken.None)).Edge);
    }

    [Theory]
    [InlineData("")]
    [InlineData("_tunnel._tcp..example.test")]
    public void Refuses_an_SRV_name_that_is_not_a_DNS_name(string name)
    {
        Assert.Throws<ArgumentException>(() => new SrvEdgeDiscovery(name, new FakeSrvResolver()));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + WaitBound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the condition");
            await Task.Delay(10);
        }
    }
}
