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

    [Fact]
    public async Task After_an_edge_comes_back_the_planner_moves_one_slot_at_a_time_until_the_spread_is_even()
    {
        var time = new RedialBackoffTests.ManualTime();
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A, B]), TimeSpan.FromSeconds(10), time);

        // A failed: all four slots went to B.
        selector.ReportFailure(A);
        for (var slot = 0; slot < 4; slot++)
        {
            Assert.Equal(B, (await selector.SelectAsync(slot, CancellationToken.None)).Edge);
            selector.ReportConnected(slot, B, "r", TimeSpan.FromMilliseconds(1));
        }

        // Within A's cool-down nothing moves: it may still be down.
        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));

        time.Advance(TimeSpan.FromSeconds(11));
        var first = await selector.PlanRebalanceAsync(CancellationToken.None);
        Assert.Equal(new RebalanceMove(3, B, A, 4, 0, RebalanceCause.Spread), first);
        selector.ReportConnected(first!.SlotIndex, A, "r", TimeSpan.FromMilliseconds(1));

        var second = await selector.PlanRebalanceAsync(CancellationToken.None);
        Assert.Equal(new RebalanceMove(2, B, A, 3, 1, RebalanceCause.Spread), second);
        selector.ReportConnected(second!.SlotIndex, A, "r", TimeSpan.FromMilliseconds(1));

        // Two and two: even, nothing more to move.
        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));
        Assert.Equal(2, selector.Placement()[A]);
        Assert.Equal(2, selector.Placement()[B]);
    }

    [Fact]
    public async Task The_planner_leaves_a_spread_off_by_one_alone_and_never_targets_a_failed_or_waiting_edge()
    {
        var time = new RedialBackoffTests.ManualTime();
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A, B, C]), TimeSpan.FromSeconds(10), time);
        selector.ReportConnected(0, A, "r", TimeSpan.FromMilliseconds(1));
        selector.ReportConnected(1, A, "r", TimeSpan.FromMilliseconds(1));
        selector.ReportConnected(2, B, "r", TimeSpan.FromMilliseconds(1));

        // 2, 1, 0: C is two short of A, but it failed lately, and B is only one short.
        selector.ReportFailure(C);
        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));

        // C asked for a retry-after longer than the cool-down: not before it passes.
        selector.ReportFailure(C, TimeSpan.FromSeconds(30));
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));

        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(new RebalanceMove(1, A, C, 2, 0, RebalanceCause.Spread), await selector.PlanRebalanceAsync(CancellationToken.None));
    }

    [Fact]
    public async Task An_edge_that_keeps_failing_is_tried_as_a_move_target_less_and_less_often_until_it_connects()
    {
        var time = new RedialBackoffTests.ManualTime();
        var selector = new EdgeSelector(new StaticEdgeDiscovery([A, B]), TimeSpan.FromSeconds(10), time);
        selector.ReportConnected(0, B, "r", TimeSpan.FromMilliseconds(1));
        selector.ReportConnected(1, B, "r", TimeSpan.FromMilliseconds(1));

        // A failed once (it was killed): after the cool-down it is a target again.
        selector.ReportFailure(A);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(A, (await selector.PlanRebalanceAsync(CancellationToken.None))!.To);

        // Each failed move doubles the wait: 20 s, 40 s, 80 s ... up to 5 minutes.
        var waits = new List<double>();
        for (var failure = 0; failure < 8; failure++)
        {
            selector.ReportFailure(A);
            var waited = TimeSpan.Zero;
            while (await selector.PlanRebalanceAsync(CancellationToken.None) is null)
            {
                time.Advance(TimeSpan.FromSeconds(1));
                waited += TimeSpan.FromSeconds(1);
                Assert.True(waited <= TimeSpan.FromMinutes(6), "the edge was left out for good");
            }

            waits.Add(waited.TotalSeconds);
        }

        Assert.Equal([20, 40, 80, 160, 300, 300, 300, 300], waits);

        // A slot's own dial is not held back by this: it still sees A after the plain cool-down.
        selector.ReportFailure(A);
        selector.ReportDisconnected(1);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(A, (await selector.SelectAsync(1, CancellationToken.None)).Edge);

        // Once A connects, its record is clean: the next failure waits the plain cool-down.
        selector.ReportConnected(1, A, "r", TimeSpan.FromMilliseconds(1));
        selector.ReportDisconnected(1);
        selector.ReportConnected(1, B, "r", TimeSpan.FromMilliseconds(1));
        selector.ReportFailure(A);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(A, (await selector.PlanRebalanceAsync(CancellationToken.None))!.To);
    }

    [Fact]
    public async Task An_edge_newly_listed_by_discovery_gets_slots_moved_to_it()
    {
        var time = new RedialBackoffTests.ManualTime();
        var discovery = new ListDiscovery([A]);
        var selector = new EdgeSelector(discovery, TimeSpan.FromSeconds(10), time);
        for (var slot = 0; slot < 2; slot++)
        {
            selector.ReportConnected(slot, (await selector.SelectAsync(slot, CancellationToken.None)).Edge, "r", TimeSpan.FromMilliseconds(1));
        }

        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));
        discovery.Edges = [A, B];
        Assert.Equal(new RebalanceMove(1, A, B, 2, 0, RebalanceCause.Spread), await selector.PlanRebalanceAsync(CancellationToken.None));
        Assert.Equal(2, selector.KnownEdgeCount);

        // Listed by address, every edge is priority 0: all of them are the best priority.
        Assert.Equal([A, B], selector.BestPriorityEdges);
    }

    [Fact]
    public async Task The_best_priority_edges_follow_discovery_and_a_lone_primary_is_one_edge()
    {
        var discovery = new ListDiscovery([A with { Priority = 20 }, B with { Priority = 10 }]);
        var selector = new EdgeSelector(discovery, TimeSpan.FromSeconds(10));
        Assert.Empty(selector.BestPriorityEdges);

        _ = await selector.SelectAsync(0, CancellationToken.None);
        Assert.Equal(2, selector.KnownEdgeCount);
        var best = Assert.Single(selector.BestPriorityEdges);
        Assert.Equal(B, best);
        Assert.Equal(10, best.Priority);

        discovery.Edges = [A with { Priority = 5 }, B with { Priority = 10 }, C with { Priority = 5 }];
        _ = await selector.PlanRebalanceAsync(CancellationToken.None);
        Assert.Equal([A, C], selector.BestPriorityEdges);
    }

    [Fact]
    public async Task Slots_use_the_best_SRV_priority_and_a_backup_only_while_that_has_no_usable_edge()
    {
        var time = new RedialBackoffTests.ManualTime();
        var primary1 = A with { Priority = 10 };
        var backup = B with { Priority = 20 };
        var primary2 = C with { Priority = 10 };
        var selector = new EdgeSelector(new StaticEdgeDiscovery([primary1, backup, primary2]), TimeSpan.FromSeconds(10), time);

        for (var slot = 0; slot < 4; slot++)
        {
            var choice = await selector.SelectAsync(slot, CancellationToken.None);
            selector.ReportConnected(slot, choice.Edge, "r", TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(2, selector.Placement()[A]);
        Assert.Equal(2, selector.Placement()[C]);
        Assert.False(selector.Placement().ContainsKey(B));
        Assert.Equal(3, selector.KnownEdgeCount);
        Assert.Equal([primary1, primary2], selector.BestPriorityEdges);
        Assert.All(selector.BestPriorityEdges, e => Assert.Equal(10, e.Priority));

        // Both primaries fail: the backup takes the slots that redial.
        selector.ReportFailure(A);
        selector.ReportFailure(C);
        selector.ReportDisconnected(0);
        Assert.Equal(B, (await selector.SelectAsync(0, CancellationToken.None)).Edge);
        selector.ReportConnected(0, B, "r", TimeSpan.FromMilliseconds(1));
        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));

        // Once a primary is usable again, the slot on the backup moves back first, whatever the spread.
        time.Advance(TimeSpan.FromSeconds(11));
        var back = await selector.PlanRebalanceAsync(CancellationToken.None);
        Assert.Equal(0, back!.SlotIndex);
        Assert.Equal(B, back.From);
        Assert.Contains(back.To, new[] { A, C });
        Assert.Equal(RebalanceCause.Priority, back.Cause);
        Assert.Equal($"to {back.To}, whose SRV priority 10 comes before this edge's 20", back.Describe());
    }

    [Fact]
    public async Task A_slot_on_an_edge_no_longer_listed_moves_to_a_listed_one()
    {
        var time = new RedialBackoffTests.ManualTime();
        var discovery = new ListDiscovery([A, B]);
        var selector = new EdgeSelector(discovery, TimeSpan.FromSeconds(10), time);
        selector.ReportConnected(0, A, "r", TimeSpan.FromMilliseconds(1));
        selector.ReportConnected(1, B, "r", TimeSpan.FromMilliseconds(1));
        Assert.Null(await selector.PlanRebalanceAsync(CancellationToken.None));

        // B is taken out of DNS (the operator retires it): its slot moves, although A has one already.
        discovery.Edges = [A];
        Assert.Equal(new RebalanceMove(1, B, A, 1, 1, RebalanceCause.Unlisted), await selector.PlanRebalanceAsync(CancellationToken.None));
    }

    private sealed class ListDiscovery(IReadOnlyList<EdgeAddress> edges) : IEdgeDiscovery
    {
        public IReadOnlyList<EdgeAddress> Edges { get; set; } = edges;

        public ValueTask<IReadOnlyList<EdgeAddress>> GetEdgesAsync(CancellationToken cancellationToken) => ValueTask.FromResult(Edges);
    }
}
