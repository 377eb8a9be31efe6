using Tunnel.Edge.Cluster;

namespace Tunnel.Edge.Tests.Cluster;

/// <summary>The local copy built from etcd's keys (a unit test of one class: no etcd needed).</summary>
public class ClusterSnapshotTests
{
    private const string Prefix = "/tunnel/";

    [Fact]
    public void Routes_resolve_exact_names_first_then_the_wildcard_one_label_up()
    {
        var snapshot = ClusterSnapshot.From(7, Prefix,
        [
            new(ClusterSnapshot.EdgeKey(Prefix, "a"), ClusterSnapshot.EdgeValue(new EdgeRecord("a", "r1", "10.0.0.1:7845"))),
            new(ClusterSnapshot.EdgeKey(Prefix, "b"), ClusterSnapshot.EdgeValue(new EdgeRecord("b", "r2", "10.0.0.2:7845"))),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "a"), ""),
            new(ClusterSnapshot.RouteKey(Prefix, "*.example.com", "b"), ""),
        ]);

        Assert.Equal(7, snapshot.Revision);
        Assert.Equal(new EdgeRecord("b", "r2", "10.0.0.2:7845"), snapshot.Edges["b"]);
        Assert.Equal(["a"], snapshot.EdgesFor("APP.example.com.").ToArray());
        Assert.Equal(["b"], snapshot.EdgesFor("other.example.com").ToArray());
        Assert.Empty(snapshot.EdgesFor("deep.other.example.com").ToArray());
        Assert.Equal(["*.example.com"], snapshot.RoutesOf("b").ToArray());
    }

    [Fact]
    public void Revocations_are_read_from_their_keys_and_an_unreadable_value_still_revokes()
    {
        var at = new DateTimeOffset(2026, 12, 5, 22, 0, 0, TimeSpan.Zero);
        var snapshot = ClusterSnapshot.From(3, Prefix,
        [
            new(ClusterSnapshot.RevokedKey(Prefix, "0a1b2c"), ClusterSnapshot.RevokedValue(new Tunnel.Edge.Identity.RevokedCredential("0A1B2C", at, "laptop stolen"))),
            new(ClusterSnapshot.RevokedKey(Prefix, "DEADBEEF"), "{not json"),
            new(Prefix + "revoked/not-hex", "{}"),
            new(Prefix + "revoked/", "{}"),
        ]);

        Assert.Equal(2, snapshot.Revocations.Length);
        var first = Assert.Single(snapshot.Revocations, r => r.Id == "0A1B2C");
        Assert.Equal(at, first.RevokedAt);
        Assert.Equal("laptop stolen", first.Reason);
        Assert.Contains(snapshot.Revocations, r => r.Id == "DEADBEEF" && r.Reason.Length == 0);
        Assert.Empty(snapshot.Edges);
    }

    [Fact]
    public void A_route_without_its_edges_record_or_with_a_record_it_cannot_read_is_left_out()
    {
        var snapshot = ClusterSnapshot.From(1, Prefix,
        [
            new(ClusterSnapshot.EdgeKey(Prefix, "a"), ClusterSnapshot.EdgeValue(new EdgeRecord("a", "", "10.0.0.1:7845"))),
            new(ClusterSnapshot.EdgeKey(Prefix, "broken"), "{not json"),
            new(ClusterSnapshot.EdgeKey(Prefix, "no-address"), "{\"region\":\"r\"}"),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "a"), ""),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "gone"), ""),
            new(ClusterSnapshot.RouteKey(Prefix, "app.example.com", "broken"), ""),
            new(ClusterSnapshot.RouteKey(Prefix, "lost.example.com", "gone"), ""),
            new("/other-cluster/edges/x", ClusterSnapshot.EdgeValue(new EdgeRecord("x", "", "10.0.0.9:7845"))),
            new(Prefix + "routes/no-edge-part", ""),
        ]);

        Assert.Equal(["a"], snapshot.Edges.Keys.ToArray());
        Assert.Equal(["a"], snapshot.EdgesFor("app.example.com").ToArray());
        Assert.False(snapshot.Routes.ContainsKey("lost.example.com"));
        Assert.Single(snapshot.Routes);
    }
}
