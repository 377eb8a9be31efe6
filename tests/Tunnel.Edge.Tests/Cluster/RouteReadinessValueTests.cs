using Microsoft.Extensions.Time.Testing;
using Tunnel.Edge.Cluster;

namespace Tunnel.Edge.Tests.Cluster;

/// <summary>The readiness a route key's value carries, read into the cluster's copy, and the writes of those keys (unit tests: no etcd).</summary>
public class RouteReadinessValueTests
{
    private const string Prefix = "/tunnel/";

    [Fact]
    public void Only_an_explicit_ready_false_reads_as_not_ready_an_older_edges_empty_value_and_garbage_read_as_ready()
    {
        var snapshot = ClusterSnapshot.From(4, Prefix,
        [
            Edge("ready"), Edge("not-ready"), Edge("old"), Edge("garbage"), Edge("array"), Edge("string-false"), Edge("future"),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "ready"), PublishedReadiness.Value(true)),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "not-ready"), PublishedReadiness.Value(false)),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "old"), ""),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "garbage"), "{\"ready\":fal"),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "array"), "[false]"),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "string-false"), "{\"ready\":\"false\"}"),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "future"), "{ \"ready\" : false, \"weight\": 3 }"),
            new(ClusterSnapshot.RouteKey(Prefix, "*.example.com", "ready"), PublishedReadiness.Value(false)),
            new(ClusterSnapshot.RouteKey(Prefix, "*.example.com", "gone"), PublishedReadiness.Value(false)),
        ]);

        Assert.Equal(["array", "future", "garbage", "not-ready", "old", "ready", "string-false"], snapshot.EdgesFor("app.example.com").ToArray());
        Assert.Equal(["future", "not-ready"], snapshot.NotReady["app.example.com"].ToArray());
        Assert.True(snapshot.IsReady("app.example.com", "ready"));
        Assert.False(snapshot.IsReady("app.example.com", "not-ready"));
        Assert.True(snapshot.IsReady("app.example.com", "old"));
        Assert.True(snapshot.IsReady("app.example.com", "garbage"));
        Assert.True(snapshot.IsReady("app.example.com", "array"));
        Assert.True(snapshot.IsReady("app.example.com", "string-false"));
        Assert.False(snapshot.IsReady("app.example.com", "future"));

        // Readiness is per route: the same edge is not ready for the wildcard; an edge without a record is in neither.
        Assert.Equal("*.example.com", snapshot.MatchRoute("Other.Example.com."));
        Assert.False(snapshot.IsReady("*.example.com", "ready"));
        Assert.Equal(["ready"], snapshot.NotReady["*.example.com"].ToArray());
        Assert.Null(snapshot.MatchRoute("example.org"));
    }

    [Fact]
    public void A_route_every_holder_serves_ready_has_no_not_ready_entry()
    {
        var snapshot = ClusterSnapshot.From(1, Prefix,
        [
            Edge("a"),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "a"), PublishedReadiness.Value(true)),
        ]);

        Assert.Empty(snapshot.NotReady);
        Assert.True(snapshot.IsReady("app.example.com", "a"));
    }

    [Fact]
    public void A_new_route_key_is_written_at_once_and_a_readiness_change_at_most_once_per_interval()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var writes = new RouteKeyWrites(time);

        var first = writes.Plan(new Dictionary<string, bool> { ["app.example.com"] = false });
        Assert.Equal([("app.example.com", false)], first.Writes);
        Assert.Null(first.RecheckIn);
        writes.Wrote("app.example.com", false);

        // Ready 100 ms after the last write: held back until the interval is over.
        time.Advance(TimeSpan.FromMilliseconds(100));
        var early = writes.Plan(new Dictionary<string, bool> { ["app.example.com"] = true });
        Assert.Empty(early.Writes);
        Assert.Equal(RouteKeyWrites.MinRewriteInterval - TimeSpan.FromMilliseconds(100), early.RecheckIn);

        // Not ready again before the interval is over: the key already says so, nothing to write.
        time.Advance(TimeSpan.FromMilliseconds(50));
        var undone = writes.Plan(new Dictionary<string, bool> { ["app.example.com"] = false });
        Assert.Empty(undone.Writes);
        Assert.Null(undone.RecheckIn);

        time.Advance(RouteKeyWrites.MinRewriteInterval);
        var due = writes.Plan(new Dictionary<string, bool> { ["app.example.com"] = true });
        Assert.Equal([("app.example.com", true)], due.Writes);
        writes.Wrote("app.example.com", true);
        Assert.True(writes.Published("app.example.com"));
    }

    [Fact]
    public void A_flapping_app_costs_at_most_four_writes_a_second_per_hostname()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var writes = new RouteKeyWrites(time);
        var count = 0;
        for (var tick = 0; tick < 1000; tick++)
        {
            // Readiness turns every 10 ms for 10 s; the loop looks at every turn.
            var plan = writes.Plan(new Dictionary<string, bool> { ["app.example.com"] = tick % 2 == 0 });
            foreach (var (hostname, ready) in plan.Writes)
            {
                writes.Wrote(hostname, ready);
                count++;
            }

            time.Advance(TimeSpan.FromMilliseconds(10));
        }

        Assert.InRange(count, 30, 41);
    }

    [Fact]
    public void A_hostname_no_longer_served_is_deleted_and_clearing_writes_every_key_again()
    {
        var writes = new RouteKeyWrites(new FakeTimeProvider());
        writes.Wrote("a.example.com", true);
        writes.Wrote("b.example.com", false);

        var plan = writes.Plan(new Dictionary<string, bool> { ["a.example.com"] = true });
        Assert.Equal(["b.example.com"], plan.Deletes);
        Assert.Empty(plan.Writes);
        writes.Deleted("b.example.com");
        Assert.Null(writes.Published("b.example.com"));

        writes.Clear();
        Assert.Equal([("a.example.com", true)], writes.Plan(new Dictionary<string, bool> { ["a.example.com"] = true }).Writes);
    }

    private static KeyValuePair<string, string> Edge(string name) =>
        new(ClusterSnapshot.EdgeKey(Prefix, name), ClusterSnapshot.EdgeValue(new EdgeRecord(name, "", "10.0.0.1:7845")));
}
