namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// The order in which RFC 2782 says to try SRV targets.
/// </summary>
internal static class SrvOrdering
{
    /// <summary>
    /// Orders <paramref name="targets"/>: by priority ascending; within a priority, by repeated weighted
    /// random selection, so that over many clients each target comes first in proportion to its weight.
    /// As RFC 2782 describes, zero-weight targets are placed first in the running list, which gives each
    /// round a small chance (1 in total weight + 1) of choosing one; when every remaining weight is
    /// zero, one is chosen uniformly, so that "0 0" records still spread the load. Targets <c>"."</c>
    /// ("service not available") are dropped.
    /// </summary>
    /// <param name="targets">The targets of one SRV answer.</param>
    /// <param name="random">The source of randomness; not used concurrently by this method.</param>
    /// <returns>A new list; empty when no target is usable.</returns>
    /// <exception cref="ArgumentException">A target has a negative weight.</exception>
    public static IReadOnlyList<SrvTarget> Order(IReadOnlyList<SrvTarget> targets, Random random)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(random);
        if (targets.Any(target => target is null))
        {
            throw new ArgumentException("A target is null.", nameof(targets));
        }

        if (targets.Any(target => target.Weight < 0))
        {
            throw new ArgumentException("SRV weights are 0 to 65535; a target has a negative weight.", nameof(targets));
        }

        var ordered = new List<SrvTarget>(targets.Count);
        var byPriority = targets
            .Where(target => target.Host is not ("." or ""))
            .GroupBy(target => target.Priority)
            .OrderBy(group => group.Key);
        foreach (var group in byPriority)
        {
            // Zero weights first, otherwise in the answer's order (OrderBy is stable).
            var remaining = group.OrderBy(target => target.Weight == 0 ? 0 : 1).ToList();
            while (remaining.Count > 0)
            {
                var index = ChooseIndex(remaining, random);
                ordered.Add(remaining[index]);
                remaining.RemoveAt(index);
            }
        }

        return ordered;
    }

    private static int ChooseIndex(List<SrvTarget> remaining, Random random)
    {
        long total = 0;
        foreach (var target in remaining)
        {
            total += target.Weight;
        }

        if (total == 0)
        {
            return random.Next(remaining.Count);
        }

        // RFC 2782: a number between 0 and the sum, inclusive; the first target whose running sum
        // reaches it. A number of 0 picks a zero-weight target at the head of the list, if any.
        var pick = random.NextInt64(0, total + 1);
        long running = 0;
        for (var i = 0; i < remaining.Count; i++)
        {
            running += remaining[i].Weight;
            if (running >= pick)
            {
                return i;
            }
        }

        return remaining.Count - 1;
    }
}
