using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Collections.Immutable;
using Tunnel.Edge.Tunnels;
using Tunnel.Protocol;

namespace Tunnel.Edge.Routing;

/// <summary>
/// Hostname to the live tunnel connections of every origin replica registered for it. Lookups are
/// lock-free reads of immutable arrays; changes copy the small array of one hostname.
/// </summary>
internal sealed class RouteTable
{
    private readonly ConcurrentDictionary<string, ImmutableArray<TunnelConnection>> _routes = new(StringComparer.Ordinal);
    private readonly Lock _writeLock = new();
    private int _connectionCount;
    private int _hostnameCount;
    private readonly Func<TunnelConnection, IReadOnlyList<string>> _hostnamesOf;
    private readonly bool _rotateTies;
    private uint _turn;
    private FrozenSet<string> _exclusive = FrozenSet<string>.Empty;

    /// <summary>A table of the connections' request hostnames (<see cref="TunnelConnection.Hostnames"/>).</summary>
    public RouteTable()
    {
        _hostnamesOf = static connection => connection.Hostnames;
    }

    /// <summary>A table of the hostnames <paramref name="hostnamesOf"/> gives for each connection (the routes of one connection mode, say).</summary>
    /// <remarks>
    /// Ties in load are broken in turn rather than by order: a visitor connection holds its stream for
    /// its whole life, and short ones one after another would otherwise all land on the first replica.
    /// </remarks>
    internal RouteTable(Func<TunnelConnection, IReadOnlyList<string>> hostnamesOf)
    {
        _hostnamesOf = hostnamesOf;
        _rotateTies = true;
    }

    /// <summary>Registered tunnel connections.</summary>
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    /// <summary>Whether any hostname has a connection: a cheap test before work done only for routed names.</summary>
    public bool HasRoutes => Volatile.Read(ref _hostnameCount) > 0;

    /// <summary>
    /// Raised after a hostname gained its first connection or lost its last one (outside the table's
    /// lock; read <see cref="Hostnames"/> for the current set). The cluster's route store listens.
    /// </summary>
    public event Action? HostnamesChanged;

    /// <summary>
    /// Raised (outside the table's lock) when whether a hostname has a ready connection may have changed
    /// without <see cref="HostnamesChanged"/>: a connection's app changed its readiness
    /// (<see cref="OnReadinessChanged"/>), or a hostname that keeps other connections gained or lost one.
    /// The cluster's route store listens, to publish the route's readiness.
    /// </summary>
    public event Action? ReadinessChanged;

    /// <summary>Tells the listeners of <see cref="ReadinessChanged"/> that a connection's app changed its readiness.</summary>
    public void OnReadinessChanged() => ReadinessChanged?.Invoke();

    /// <summary>The hostnames (exact and wildcard, as registered) with at least one connection.</summary>
    public IReadOnlyCollection<string> Hostnames() => _routes.Keys.ToArray();

    /// <summary>
    /// Sets the exact names claimed exclusively by a credential: a visitor's host among them is served by
    /// its exact route only, never by a wildcard route of another credential while the claimant has no
    /// usable connection.
    /// </summary>
    public void UseExclusiveNames(IEnumerable<string> hostnames)
    {
        ArgumentNullException.ThrowIfNull(hostnames);
        Volatile.Write(ref _exclusive, hostnames.ToFrozenSet(StringComparer.Ordinal));
    }

    /// <summary>Adds a registered connection under each of its hostnames.</summary>
    public void Add(TunnelConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var added = false;
        lock (_writeLock)
        {
            foreach (var hostname in _hostnamesOf(connection))
            {
                if (!_routes.ContainsKey(hostname))
                {
                    added = true;
                    _hostnameCount++;
                }

                _routes[hostname] = _routes.TryGetValue(hostname, out var existing) ? existing.Add(connection) : [connection];
            }

            _connectionCount++;
        }

        if (added)
        {
            HostnamesChanged?.Invoke();
        }
        else
        {
            ReadinessChanged?.Invoke();
        }
    }

    /// <summary>Removes a connection from every hostname; returns whether it was present.</summary>
    public bool Remove(TunnelConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var removed = false;
        var emptied = false;
        lock (_writeLock)
        {
            foreach (var hostname in _hostnamesOf(connection))
            {
                if (_routes.TryGetValue(hostname, out var existing) && existing.Contains(connection))
                {
                    removed = true;
                    var remaining = existing.Remove(connection);
                    if (remaining.IsEmpty)
                    {
                        _routes.TryRemove(hostname, out _);
                        _hostnameCount--;
                        emptied = true;
                    }
                    else
                    {
                        _routes[hostname] = remaining;
                    }
                }
            }

            if (removed)
            {
                _connectionCount--;
            }
        }

        if (emptied)
        {
            HostnamesChanged?.Invoke();
        }
        else if (removed)
        {
            ReadinessChanged?.Invoke();
        }

        return removed;
    }

    /// <summary>
    /// Picks the usable connection with the fewest requests in flight for a visitor's host (exact name
    /// first, then the wildcard one label up), skipping <paramref name="exclude"/>.
    /// </summary>
    /// <param name="host">The host without port, any case.</param>
    /// <param name="exclude">Connections that already failed this request or were full, or <c>null</c>.</param>
    public TunnelConnection? Pick(string host, IReadOnlyCollection<TunnelConnection>? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        var name = Normalize(host);
        return PickFrom(name, exclude) ?? (WildcardFor(name) is { } wildcard ? PickFrom(wildcard, exclude) : null);
    }

    /// <summary>Whether any connection, usable or not, is registered for the host.</summary>
    public bool HasRoute(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var name = Normalize(host);
        return _routes.ContainsKey(name) || (WildcardFor(name) is { } wildcard && _routes.ContainsKey(wildcard));
    }

    /// <summary>
    /// The registered hostname a visitor's host matches (the exact name, else the wildcard one label
    /// up), or <c>null</c>: the route name metrics and the status page use.
    /// </summary>
    public string? MatchRoute(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var name = Normalize(host);
        return _routes.ContainsKey(name) ? name : WildcardFor(name) is { } wildcard && _routes.ContainsKey(wildcard) ? wildcard : null;
    }

    /// <summary>The connections registered for exactly <paramref name="hostname"/> (normalized), none when it has no route.</summary>
    public ImmutableArray<TunnelConnection> ConnectionsFor(string hostname)
    {
        ArgumentNullException.ThrowIfNull(hostname);
        return _routes.TryGetValue(hostname, out var connections) ? connections : [];
    }

    /// <summary>A copy of the table for status pages and tests.</summary>
    public IReadOnlyDictionary<string, ImmutableArray<TunnelConnection>> Snapshot() => _routes.ToDictionary();

    /// <summary>Every registered connection once.</summary>
    public IReadOnlyCollection<TunnelConnection> Connections() => _routes.Values.SelectMany(c => c).Distinct().ToArray();

    private TunnelConnection? PickFrom(string name, IReadOnlyCollection<TunnelConnection>? exclude)
    {
        if (!_routes.TryGetValue(name, out var candidates))
        {
            return null;
        }

        TunnelConnection? best = null;
        var bestLoad = int.MaxValue;
        var start = _rotateTies && candidates.Length > 1 ? (int)(Interlocked.Increment(ref _turn) % (uint)candidates.Length) : 0;
        for (var i = 0; i < candidates.Length; i++)
        {
            var candidate = candidates[(start + i) % candidates.Length];
            if (!candidate.IsUsable || (exclude is not null && exclude.Contains(candidate)))
            {
                continue;
            }

            var load = candidate.InFlight;
            if (load < bestLoad)
            {
                best = candidate;
                bestLoad = load;
            }
        }

        return best;
    }

    // A name claimed exclusively is never served through a wildcard: that wildcard belongs to another credential.
    private string? WildcardFor(string name) => Volatile.Read(ref _exclusive).Contains(name) ? null : HostnameRules.WildcardFor(name);

    private static string Normalize(string host) =>
        host.EndsWith('.') ? host.TrimEnd('.').ToLowerInvariant() : host.ToLowerInvariant();
}
