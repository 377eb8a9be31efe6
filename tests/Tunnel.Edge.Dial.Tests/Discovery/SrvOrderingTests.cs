using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests.Discovery;

public class SrvOrderingTests
{
    private const int Runs = 20000;

    [Fact]
    public void Orders_targets_by_priority_lowest_first()
    {
        var targets = new[] { Target("c", priority: 20), Target("a", priority: 0), Target("d", priority: 30), Target("b", priority: 10) };

        var ordered = SrvOrdering.Order(targets, new Random(1));

        Assert.Equal(["a", "b", "c", "d"], ordered.Select(t => t.Host));
    }

    [Fact]
    public void Puts_a_target_first_in_proportion_to_its_weight()
    {
        var targets = new[] { Target("w10", weight: 10), Target("w30", weight: 30), Target("w60", weight: 60), Target("backup", priority: 1, weight: 1000) };
        var random = new Random(42);
        var first = new Dictionary<string, int>();
        for (var run = 0; run < Runs; run++)
        {
            var ordered = SrvOrdering.Order(targets, random);
            Assert.Equal("backup", ordered[^1].Host);
            first[ordered[0].Host] = first.GetValueOrDefault(ordered[0].Host) + 1;
        }

        Assert.InRange(Share(first, "w10"), 0.08, 0.12);
        Assert.InRange(Share(first, "w30"), 0.27, 0.33);
        Assert.InRange(Share(first, "w60"), 0.56, 0.64);
    }

    [Fact]
    public void Gives_zero_weight_targets_a_small_chance_to_come_first()
    {
        var targets = new[] { Target("heavy", weight: 100), Target("zero", weight: 0) };
        var random = new Random(3);
        var zeroFirst = 0;
        for (var run = 0; run < Runs; run++)
        {
            if (SrvOrdering.Order(targets, random)[0].Host == "zero")
            {
                zeroFirst++;
            }
        }

        // RFC 2782: about 1 in (sum of weights + 1) = 1 in 101.
        Assert.InRange(zeroFirst / (double)Runs, 0.004, 0.02);
    }

    [Fact]
    public void Spreads_targets_evenly_when_every_weight_is_zero()
    {
        var targets = new[] { Target("a"), Target("b"), Target("c"), Target("d") };
        var random = new Random(5);
        var first = new Dictionary<string, int>();
        for (var run = 0; run < Runs; run++)
        {
            var host = SrvOrdering.Order(targets, random)[0].Host;
            first[host] = first.GetValueOrDefault(host) + 1;
        }

        Assert.All(["a", "b", "c", "d"], host => Assert.InRange(Share(first, host), 0.22, 0.28));
    }

    [Fact]
    public void Returns_every_target_exactly_once()
    {
        var random = new Random(11);
        for (var run = 0; run < 200; run++)
        {
            var targets = Enumerable.Range(0, random.Next(1, 20))
                .Select(i => Target("t" + i, priority: random.Next(3), weight: random.Next(3) == 0 ? 0 : random.Next(1, 100)))
                .ToArray();

            var ordered = SrvOrdering.Order(targets, random);

            Assert.Equal(targets.Select(t => t.Host).Order(), ordered.Select(t => t.Host).Order());
            Assert.Equal(ordered.Select(t => t.Priority).Order(), ordered.Select(t => t.Priority));
        }
    }

    [Fact]
    public void A_dot_target_means_the_service_is_not_available()
    {
        Assert.Empty(SrvOrdering.Order([Target(".")], new Random(1)));
        Assert.Equal(["a"], SrvOrdering.Order([Target("."), Target("a", priority: 5)], new Random(1)).Select(t => t.Host));
    }

    [Fact]
    public void Refuses_negative_weights()
    {
        Assert.Throws<ArgumentException>(() => SrvOrdering.Order([Target("a", weight: -1)], new Random(1)));
    }

    private static SrvTarget Target(string host, int priority = 0, int weight = 0) => new(host, 7844, priority, weight, []);

    private static double Share(Dictionary<string, int> counts, string host) => counts.GetValueOrDefault(host) / (double)Runs;
}
