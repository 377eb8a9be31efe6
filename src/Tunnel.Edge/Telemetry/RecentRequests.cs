using System.Collections.Concurrent;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Visitor requests of the last minute by route and status class, for the status page: a ring of
/// one-second buckets per route, so a count is exact to the second and memory is fixed per route.
/// </summary>
internal sealed class RecentRequests
{
    /// <summary>The window the counts cover.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(WindowSeconds);

    private const int WindowSeconds = 60;

    // 1xx, 2xx, 3xx, 4xx, 5xx.
    private const int Classes = 5;

    // The key for requests whose host matched no route; no hostname can be empty.
    private const string NoRoute = "";

    private readonly ConcurrentDictionary<string, Ring> _routes = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    /// <summary>Creates the counter.</summary>
    public RecentRequests(TimeProvider time) => _time = time;

    /// <summary>Counts one finished request.</summary>
    public void Add(string? route, int statusCode)
    {
        var statusClass = statusCode / 100 - 1;
        if (statusClass is < 0 or >= Classes)
        {
            return;
        }

        _routes.GetOrAdd(route ?? NoRoute, _ => new Ring()).Add(Second(), statusClass);
    }

    /// <summary>The last minute's counts, per route (<c>null</c> for no route), busiest first.</summary>
    public IReadOnlyList<RouteRequestCounts> Snapshot()
    {
        var now = Second();
        var result = new List<RouteRequestCounts>();
        foreach (var (route, ring) in _routes)
        {
            var counts = ring.Sum(now);
            if (counts.Sum() == 0)
            {
                // Quiet for a minute: forget it, so routes that went away do not pile up.
                _routes.TryRemove(new KeyValuePair<string, Ring>(route, ring));
                continue;
            }

            result.Add(new RouteRequestCounts(route.Length == 0 ? null : route, counts));
        }

        return [.. result.OrderByDescending(r => r.Total).ThenBy(r => r.Route, StringComparer.Ordinal)];
    }

    private long Second() => _time.GetUtcNow().ToUnixTimeSeconds();

    private sealed class Ring
    {
        private readonly long[] _seconds = new long[WindowSeconds];
        private readonly long[,] _counts = new long[WindowSeconds, Classes];
        private readonly Lock _lock = new();

        public void Add(long second, int statusClass)
        {
            var slot = (int)(second % WindowSeconds);
            lock (_lock)
            {
                if (_seconds[slot] != second)
                {
                    _seconds[slot] = second;
                    for (var i = 0; i < Classes; i++)
                    {
                        _counts[slot, i] = 0;
                    }
                }

                _counts[slot, statusClass]++;
            }
        }

        public long[] Sum(long now)
        {
            var sum = new long[Classes];
            lock (_lock)
            {
                for (var slot = 0; slot < WindowSeconds; slot++)
                {
                    if (now - _seconds[slot] < WindowSeconds)
                    {
                        for (var i = 0; i < Classes; i++)
                        {
                            sum[i] += _counts[slot, i];
                        }
                    }
                }
            }

            return sum;
        }
    }
}

/// <summary>One route's requests in the last minute.</summary>
/// <param name="Route">The route, or <c>null</c> for requests whose host matched none.</param>
/// <param name="ByStatusClass">Counts for 1xx, 2xx, 3xx, 4xx, 5xx.</param>
internal sealed record RouteRequestCounts(string? Route, IReadOnlyList<long> ByStatusClass)
{
    /// <summary>All requests.</summary>
    public long Total => ByStatusClass.Sum();
}
