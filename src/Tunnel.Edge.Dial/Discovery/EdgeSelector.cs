namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Chooses the edge each connection slot dials: slots are spread over the known edges, and an edge
/// that just failed is set aside for a cool-down so the slot moves to another one. Thread-safe.
/// </summary>
public sealed class EdgeSelector
{
    private readonly IEdgeDiscovery _discovery;
    private readonly TimeProvider _time;
    private readonly TimeSpan _coolDown;
    private readonly Dictionary<EdgeAddress, long> _failedAt = [];
    private readonly Lock _lock = new();

    /// <summary>Creates a selector over a discovery source.</summary>
    /// <param name="discovery">Where the edges come from.</param>
    /// <param name="coolDown">How long a failed edge is set aside.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    public EdgeSelector(IEdgeDiscovery discovery, TimeSpan coolDown, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(discovery);
        _discovery = discovery;
        _coolDown = coolDown;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>
    /// The edge slot <paramref name="slotIndex"/> should dial now: its share of the list, skipping
    /// edges in cool-down; when every edge is cooling down, the one that failed longest ago.
    /// </summary>
    public async ValueTask<EdgeAddress> SelectAsync(int slotIndex, CancellationToken cancellationToken)
    {
        var edges = await _discovery.GetEdgesAsync(cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            EdgeAddress? oldestFailure = null;
            var oldestFailedAt = long.MaxValue;
            for (var i = 0; i < edges.Count; i++)
            {
                var candidate = edges[(slotIndex + i) % edges.Count];
                if (!_failedAt.TryGetValue(candidate, out var failedAt) || _time.GetElapsedTime(failedAt) >= _coolDown)
                {
                    _failedAt.Remove(candidate);
                    return candidate;
                }

                if (failedAt < oldestFailedAt)
                {
                    oldestFailedAt = failedAt;
                    oldestFailure = candidate;
                }
            }

            return oldestFailure ?? edges[slotIndex % edges.Count];
        }
    }

    /// <summary>Sets an edge aside for the cool-down.</summary>
    public void ReportFailure(EdgeAddress edge)
    {
        ArgumentNullException.ThrowIfNull(edge);
        lock (_lock)
        {
            _failedAt[edge] = _time.GetTimestamp();
        }
    }
}
