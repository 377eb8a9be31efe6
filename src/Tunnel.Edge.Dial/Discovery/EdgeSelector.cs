namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Chooses the edge each connection slot dials, so that the slots spread over as many distinct edges
/// and regions as exist, nearest first by measured connect time. Only edges of the best (lowest) SRV
/// priority that has a usable edge are chosen, as RFC 2782 asks; edges listed by address all have
/// priority 0. An edge that failed is set aside for a cool-down (another is taken while one is
/// available); an edge that asked for a retry-after is not dialed before that time at all. Thread-safe.
/// </summary>
public sealed class EdgeSelector
{
    // Connect times are smoothed so that one slow handshake does not reorder the edges.
    private const double ConnectTimeSmoothing = 0.3;

    private readonly IEdgeDiscovery _discovery;
    private readonly TimeProvider _time;
    private readonly TimeSpan _coolDown;
    private readonly Dictionary<EdgeAddress, EdgeState> _edges = [];
    private readonly Dictionary<int, EdgeAddress> _slots = [];
    private readonly Lock _lock = new();

    /// <summary>Creates a selector over a discovery source.</summary>
    /// <param name="discovery">Where the edges come from.</param>
    /// <param name="coolDown">How long a failed edge is set aside while others are available.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    public EdgeSelector(IEdgeDiscovery discovery, TimeSpan coolDown, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(discovery);
        _discovery = discovery;
        _coolDown = coolDown;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>How many edges the last discovery returned.</summary>
    public int KnownEdgeCount { get; private set; }

    /// <summary>
    /// The edges of the best (lowest) SRV priority in the last discovery: the only ones slots use while
    /// any of them can be reached. All of them when the edges are listed by address (priority 0).
    /// </summary>
    public IReadOnlyList<EdgeAddress> BestPriorityEdges { get; private set; } = [];

    /// <summary>
    /// The edge slot <paramref name="slotIndex"/> should dial, and how long to wait first (zero unless
    /// every edge asked for a retry-after that has not passed).
    /// </summary>
    public async ValueTask<EdgeChoice> SelectAsync(int slotIndex, CancellationToken cancellationToken)
    {
        var edges = await _discovery.GetEdgesAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            Remember(edges);
            var open = new List<(EdgeAddress Edge, int Index, EdgeState State)>();
            EdgeAddress? soonest = null;
            var soonestAt = long.MaxValue;
            for (var i = 0; i < edges.Count; i++)
            {
                var state = StateOf(edges[i]);
                if (state.NotBefore is { } notBefore && notBefore > now)
                {
                    if (notBefore < soonestAt)
                    {
                        soonestAt = notBefore;
                        soonest = edges[i];
                    }

                    continue;
                }

                open.Add((edges[i], i, state));
            }

            if (open.Count == 0)
            {
                return new EdgeChoice(soonest!, _time.GetElapsedTime(now, soonestAt));
            }

            var healthy = open.Where(c => c.State.FailedAt is not { } failedAt || _time.GetElapsedTime(failedAt, now) >= _coolDown).ToList();
            if (healthy.Count == 0)
            {
                // Everything failed lately: try the one that failed longest ago.
                var oldest = open.MinBy(c => c.State.FailedAt ?? long.MinValue);
                return new EdgeChoice(oldest.Edge, TimeSpan.Zero);
            }

            KeepBestPriority(healthy);

            // Fewest other slots on the edge, then on its region, then nearest, then discovery order.
            var best = Preferred(healthy, slotIndex);

            // Hold the place now: slots that start together must not all see the same empty edge.
            _slots[slotIndex] = best;
            return new EdgeChoice(best, TimeSpan.Zero);
        }
    }

    /// <summary>
    /// A connection worth moving, or <c>null</c>. Asks discovery first, so that edges newly listed, or
    /// no longer listed, count. The usable edges are those listed, not failed within the cool-down and
    /// with no retry-after pending; the target is always the usable edge of the best priority that a
    /// new dial would prefer (fewest slots, then fewest in its region, then nearest, then discovery
    /// order). First, a slot on an edge of a worse priority than that (a backup, or an edge no longer
    /// listed) moves, the worst first. Otherwise, when an edge of that priority holds at least two slots
    /// more than the target, its highest-numbered slot moves; a spread off by one is left alone.
    /// </summary>
    /// <param name="cancellationToken">Stops the discovery lookup.</param>
    public async ValueTask<RebalanceMove?> PlanRebalanceAsync(CancellationToken cancellationToken)
    {
        var edges = await _discovery.GetEdgesAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            Remember(edges);
            if (_slots.Count == 0)
            {
                return null;
            }

            var listed = new Dictionary<EdgeAddress, int>();
            var usable = new List<(EdgeAddress Edge, int Index, EdgeState State)>();
            for (var i = 0; i < edges.Count; i++)
            {
                listed.TryAdd(edges[i], edges[i].Priority);
                var state = StateOf(edges[i]);
                var waiting = state.NotBefore is { } notBefore && notBefore > now;
                var cooling = state.FailedAt is { } failedAt && _time.GetElapsedTime(failedAt, now) < RebalanceCoolDown(state);
                if (!waiting && !cooling)
                {
                    usable.Add((edges[i], i, state));
                }
            }

            if (usable.Count == 0)
            {
                return null;
            }

            var tier = KeepBestPriority(usable);
            int PriorityOf(EdgeAddress edge) => listed.TryGetValue(edge, out var priority) ? priority : int.MaxValue;

            // A slot below the best usable priority goes back up, whatever the spread.
            var demoted = _slots
                .Where(s => PriorityOf(s.Value) > tier)
                .OrderByDescending(s => PriorityOf(s.Value))
                .ThenByDescending(s => s.Key)
                .Select(s => (KeyValuePair<int, EdgeAddress>?)s)
                .FirstOrDefault();
            if (demoted is { } slot)
            {
                var to = Preferred(usable, slot.Key);
                var (from, cause) = listed.TryGetValue(slot.Value, out var priority)
                    ? (slot.Value with { Priority = priority }, RebalanceCause.Priority)
                    : (slot.Value, RebalanceCause.Unlisted);
                return new RebalanceMove(slot.Key, from, to, SlotsOn(slot.Value, -1), SlotsOn(to, slot.Key), cause);
            }

            // Within the best priority: from the fullest edge to the preferred one, when two apart.
            var fullest = _slots
                .Where(s => PriorityOf(s.Value) == tier)
                .GroupBy(s => s.Value)
                .Select(g => (Edge: g.Key, Count: g.Count(), Slot: g.Max(s => s.Key)))
                .OrderByDescending(g => g.Count)
                .ThenByDescending(g => g.Slot)
                .FirstOrDefault();
            if (fullest.Count < 2)
            {
                return null;
            }

            usable.RemoveAll(c => c.Edge.Equals(fullest.Edge));
            if (usable.Count == 0)
            {
                return null;
            }

            var target = Preferred(usable, fullest.Slot);
            var onTarget = SlotsOn(target, fullest.Slot);
            return fullest.Count - onTarget >= 2
                ? new RebalanceMove(fullest.Slot, fullest.Edge, target, fullest.Count, onTarget, RebalanceCause.Spread)
                : null;
        }
    }

    /// <summary>Records what the last discovery listed (<see cref="KnownEdgeCount"/>, <see cref="BestPriorityEdges"/>). Call under the lock.</summary>
    private void Remember(IReadOnlyList<EdgeAddress> edges)
    {
        KnownEdgeCount = edges.Count;
        if (edges.Count == 0)
        {
            BestPriorityEdges = [];
            return;
        }

        var best = edges.Min(e => e.Priority);
        BestPriorityEdges = edges.Where(e => e.Priority == best).ToArray();
    }

    /// <summary>
    /// Keeps only the candidates of the best (lowest) priority among them, and returns it: a worse
    /// priority is a backup for when the best has no usable edge (RFC 2782). Not empty on entry.
    /// </summary>
    private static int KeepBestPriority(List<(EdgeAddress Edge, int Index, EdgeState State)> candidates)
    {
        var tier = candidates.Min(c => c.Edge.Priority);
        candidates.RemoveAll(c => c.Edge.Priority != tier);
        return tier;
    }

    /// <summary>The edge a new dial for <paramref name="slotIndex"/> would prefer among <paramref name="candidates"/>. Call under the lock.</summary>
    private EdgeAddress Preferred(List<(EdgeAddress Edge, int Index, EdgeState State)> candidates, int slotIndex) =>
        candidates
            .OrderBy(c => SlotsOn(c.Edge, slotIndex))
            .ThenBy(c => SlotsInRegion(c.State.RegionKey(c.Edge), slotIndex))
            .ThenBy(c => c.State.ConnectMilliseconds ?? 0)
            .ThenBy(c => c.Index)
            .First()
            .Edge;

    /// <summary>Records a successful dial: the slot now uses the edge, which is in the region it reported.</summary>
    public void ReportConnected(int slotIndex, EdgeAddress edge, string? region, TimeSpan connectTime)
    {
        ArgumentNullException.ThrowIfNull(edge);
        lock (_lock)
        {
            var state = StateOf(edge);
            state.Region = string.IsNullOrEmpty(region) ? null : region;
            state.FailedAt = null;
            state.ConsecutiveFailures = 0;
            var measured = connectTime.TotalMilliseconds;
            state.ConnectMilliseconds = state.ConnectMilliseconds is { } previous
                ? previous + (ConnectTimeSmoothing * (measured - previous))
                : measured;
            _slots[slotIndex] = edge;
        }
    }

    /// <summary>Records that the slot no longer uses any edge.</summary>
    public void ReportDisconnected(int slotIndex)
    {
        lock (_lock)
        {
            _slots.Remove(slotIndex);
        }
    }

    /// <summary>
    /// Sets an edge aside for the cool-down; with <paramref name="retryAfter"/>, it is not dialed at all
    /// before that time has passed.
    /// </summary>
    public void ReportFailure(EdgeAddress edge, TimeSpan? retryAfter = null)
    {
        ArgumentNullException.ThrowIfNull(edge);
        lock (_lock)
        {
            var now = _time.GetTimestamp();
            var state = StateOf(edge);
            state.FailedAt = now;
            state.ConsecutiveFailures++;
            if (retryAfter is { } delay && delay > TimeSpan.Zero)
            {
                state.NotBefore = now + (long)(delay.TotalSeconds * _time.TimestampFrequency);
            }
        }
    }

    /// <summary>The number of slots on each edge now, for logs and tests.</summary>
    public IReadOnlyDictionary<EdgeAddress, int> Placement()
    {
        lock (_lock)
        {
            return _slots.Values.GroupBy(e => e).ToDictionary(g => g.Key, g => g.Count());
        }
    }

    private EdgeState StateOf(EdgeAddress edge)
    {
        if (!_edges.TryGetValue(edge, out var state))
        {
            state = new EdgeState();
            _edges[edge] = state;
        }

        return state;
    }

    private int SlotsOn(EdgeAddress edge, int exceptSlot) =>
        _slots.Count(s => s.Key != exceptSlot && s.Value.Equals(edge));

    private int SlotsInRegion(string regionKey, int exceptSlot) =>
        _slots.Count(s => s.Key != exceptSlot && StateOf(s.Value).RegionKey(s.Value) == regionKey);

    /// <summary>
    /// How long after its last failure an edge is left out of rebalancing plans: the cool-down, doubled
    /// for each failure in a row beyond the first, at most <see cref="MaxRebalanceCoolDown"/>. An edge
    /// back after a restart is found again within a cool-down or two; one that stays down (left in
    /// the configuration, say) costs one refused connect every few minutes, not one per check.
    /// </summary>
    private TimeSpan RebalanceCoolDown(EdgeState state)
    {
        var doublings = Math.Clamp(state.ConsecutiveFailures - 1, 0, 16);
        var ticks = Math.Min(_coolDown.Ticks * (1L << doublings), MaxRebalanceCoolDown.Ticks);
        return TimeSpan.FromTicks(Math.Max(ticks, _coolDown.Ticks));
    }

    /// <summary>The longest an edge that keeps failing is left out of rebalancing plans.</summary>
    public static readonly TimeSpan MaxRebalanceCoolDown = TimeSpan.FromMinutes(5);

    private sealed class EdgeState
    {
        public int ConsecutiveFailures { get; set; }

        public long? FailedAt { get; set; }

        public long? NotBefore { get; set; }

        public double? ConnectMilliseconds { get; set; }

        public string? Region { get; set; }

        // An edge that has not told its region yet counts as a region of its own.
        public string RegionKey(EdgeAddress edge) => Region is null ? "edge:" + edge : "region:" + Region;
    }
}

/// <summary>An edge to dial, and how long to wait before dialing it.</summary>
/// <param name="Edge">The edge.</param>
/// <param name="Wait">Zero, unless every edge asked for a retry-after that has not passed yet.</param>
public readonly record struct EdgeChoice(EdgeAddress Edge, TimeSpan Wait);

/// <summary>A connection slot to move to another edge.</summary>
/// <param name="SlotIndex">The slot to move.</param>
/// <param name="From">The edge it is on (with its current SRV priority).</param>
/// <param name="To">The edge to move it to.</param>
/// <param name="SlotsOnFrom">How many slots the edge it is on holds, itself included.</param>
/// <param name="SlotsOnTo">How many slots the edge to move to holds.</param>
/// <param name="Cause">Why it moves.</param>
public sealed record RebalanceMove(int SlotIndex, EdgeAddress From, EdgeAddress To, int SlotsOnFrom, int SlotsOnTo, RebalanceCause Cause)
{
    /// <summary>Why, in words, for logs: <c>"to edge:7844, which held 0 connection(s) against 4 here"</c>.</summary>
    public string Describe(string? toName = null)
    {
        var to = toName is null ? To.ToString() : $"{To} ({toName})";
        return Cause switch
        {
            RebalanceCause.Priority => $"to {to}, whose SRV priority {To.Priority} comes before this edge's {From.Priority}",
            RebalanceCause.Unlisted => $"to {to}, since discovery no longer lists this edge",
            _ => $"to {to}, which held {SlotsOnTo} connection(s) against {SlotsOnFrom} here",
        };
    }
}

/// <summary>Why a connection slot moves to another edge.</summary>
public enum RebalanceCause
{
    /// <summary>Its edge holds at least two slots more than the edge it moves to.</summary>
    Spread,

    /// <summary>Its edge has a worse SRV priority than a usable edge (it is a backup).</summary>
    Priority,

    /// <summary>Discovery no longer lists its edge.</summary>
    Unlisted,
}
