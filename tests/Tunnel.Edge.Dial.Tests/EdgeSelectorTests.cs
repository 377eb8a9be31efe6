using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests;

public class EdgeSelectorTests
{
    private static readonly EdgeAddress A = new("a.edge.test", 7844);
    private static readonly EdgeAddress B = new("b.edge.test", 7844);
    private static readonly EdgeAddress C = new("c.edge.test", 7844);

    [Fact]
    public async Task Four_slots_spread_over_three_edges_and_both_regions()
    {
        var time = new RedialBackoffTests.ManualTime();
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A, B, C]), TimeSpan.FromSeconds(10), time);
        var regions = new Dictionary<EdgeAddress, string> { [A] = "r1", [B] = "r1", [C] = "r2" };

        for (var slot = 0; slot < 4; slot++)
        {
            var choice = await selector.SelectAsync(slot, CancellationToken.None);
            selector.ReportConnected(slot, choice.Edge, regions[choice.Edge], TimeSpan.FromMilliseconds(choice.Edge == A ? 1 : 5));
        }

        var placement = selector.Placement();
        Assert.Equal(3, placement.Count);
        Assert.Equal(2, placement.Keys.Select(e => regions[e]).Distinct().Count());
        Assert.All(placement.Values, count => Assert.InRange(count, 1, 2));
    }

    [Fact]
    public async Task The_nearest_edge_is_chosen_first()
    {
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A, B]), TimeSpan.FromSeconds(10), new RedialBackoffTests.ManualTime());
        selector.ReportConnected(0, A, "r", TimeSpan.FromMilliseconds(50));
        selector.ReportConnected(1, B, "r", TimeSpan.FromMilliseconds(5));
        selector.ReportDisconnected(0);
        selector.ReportDisconnected(1);

        Assert.Equal(B, (await selector.SelectAsync(0, CancellationToken.None)).Edge);
    }

    [Fact]
    public async Task A_failed_edge_is_set_aside_and_the_slot_moves_to_another()
    {
        var time = new RedialBackoffTests.ManualTime();
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A, B]), TimeSpan.FromSeconds(10), time);
        var first = (await selector.SelectAsync(0, CancellationToken.None)).Edge;
        selector.ReportFailure(first);

        var second = await selector.SelectAsync(0, CancellationToken.None);
        Assert.NotEqual(first, second.Edge);
        Assert.Equal(TimeSpan.Zero, second.Wait);

        time.Advance(TimeSpan.FromSeconds(11));
        selector.ReportFailure(second.Edge);
        Assert.Equal(first, (await selector.SelectAsync(0, CancellationToken.None)).Edge);
    }

    [Fact]
    public async Task An_edge_is_not_dialed_before_its_retry_after()
    {
        var time = new RedialBackoffTests.ManualTime();
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A]), TimeSpan.FromSeconds(1), time);
        selector.ReportFailure(A, TimeSpan.FromSeconds(12));

        var choice = await selector.SelectAsync(0, CancellationToken.None);
        Assert.Equal(A, choice.Edge);
        Assert.Equal(TimeSpan.FromSeconds(12), choice.Wait);

        time.Advance(TimeSpan.FromSeconds(12));
        Assert.Equal(TimeSpan.Zero, (await selector.SelectAsync(0, CancellationToken.None)).Wait);
    }
}
