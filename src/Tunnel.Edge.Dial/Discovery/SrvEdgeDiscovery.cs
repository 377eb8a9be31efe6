using System.Globalization;
using Tunnel.Edge.Dial.Discovery.Dns;

namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Finds edges through an SRV name such as <c>_tunnel._tcp.example.com</c>, in RFC 2782 order.
/// </summary>
/// <remarks>
/// <para>
/// The last good answer is kept for its TTL, but at least 5 seconds and at most an hour; meanwhile
/// <see cref="GetEdgesAsync"/> returns the same list at once, without locking or allocating, so callers
/// such as <see cref="EdgeSelector"/> may ask on every dial. The first call after that refreshes;
/// concurrent callers share one lookup. The RFC 2782 order is drawn once per answer, so connection
/// slots keep their edges between refreshes while the weights still spread many origins over the edges.
/// </para>
/// <para>
/// When a refresh fails (including an answer with no usable target), the last good list is kept and
/// the error is in <see cref="LastError"/>; DNS is asked again 5 seconds later. When there never was a
/// good answer, the static fallback list is returned if one was given, else
/// <see cref="EdgeDiscoveryException"/> is thrown naming the SRV name and the error. Thread-safe.
/// </para>
/// </remarks>
internal sealed class SrvEdgeDiscovery : IEdgeDiscovery
{
    private readonly ISrvResolver _resolver;
    private readonly IReadOnlyList<EdgeAddress>? _fallback;
    private readonly TimeProvider _time;
    private readonly TimeSpan _cacheFloor;
    private readonly Lock _lock = new();
    private volatile CachedEdges? _cached;
    private volatile Exception? _lastError;
    private IReadOnlyList<EdgeAddress>? _lastGood;
    private Task<IReadOnlyList<EdgeAddress>>? _refresh;

    /// <summary>Creates the discovery; nothing is looked up until the first <see cref="GetEdgesAsync"/>.</summary>
    /// <param name="srvName">The SRV name to look up, e.g. <c>_tunnel._tcp.example.com</c>.</param>
    /// <param name="resolver">Looks the name up; usually a <see cref="DnsSrvResolver"/>.</param>
    /// <param name="fallback">Edges to use while DNS has never answered usefully; <c>null</c> or empty for none.</param>
    /// <param name="timeProvider">The clock for TTLs; the system clock by default.</param>
    /// <exception cref="ArgumentException"><paramref name="srvName"/> is not a DNS name.</exception>
    public SrvEdgeDiscovery(string srvName, ISrvResolver resolver, IEnumerable<EdgeAddress>? fallback = null, TimeProvider? timeProvider = null)
        : this(srvName, resolver, fallback, timeProvider, DiscoveryLimits.SrvCacheFloor)
    {
    }

    /// <summary>
    /// Creates the discovery with another floor under the TTL than the 5 seconds of
    /// <see cref="DiscoveryLimits.SrvCacheFloor"/>: tests against a real DNS server use TTLs of a second
    /// or two and must see them honoured.
    /// </summary>
    internal SrvEdgeDiscovery(string srvName, ISrvResolver resolver, IEnumerable<EdgeAddress>? fallback, TimeProvider? timeProvider, TimeSpan cacheFloor)
    {
        ArgumentNullException.ThrowIfNull(srvName);
        ArgumentNullException.ThrowIfNull(resolver);
        if (!DnsName.TryNormalizeQueryName(srvName, out var normalized, out var error))
        {
            throw new ArgumentException(error, nameof(srvName));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(cacheFloor, TimeSpan.Zero);
        SrvName = normalized;
        _resolver = resolver;
        var fallbackEdges = fallback?.ToArray();
        if (fallbackEdges is not null && fallbackEdges.Any(edge => edge is null))
        {
            throw new ArgumentException("The fallback list contains a null edge.", nameof(fallback));
        }

        _fallback = fallbackEdges is { Length: > 0 } ? fallbackEdges : null;
        _time = timeProvider ?? TimeProvider.System;
        _cacheFloor = cacheFloor;
    }

    /// <summary>The SRV name looked up, without a trailing dot.</summary>
    public string SrvName { get; }

    /// <summary>
    /// Why the latest lookup failed, while edges are served from the last good answer or the fallback;
    /// <c>null</c> once a lookup succeeds.
    /// </summary>
    public Exception? LastError => _lastError;

    /// <inheritdoc />
    /// <exception cref="EdgeDiscoveryException">DNS never answered usefully and there is no fallback list.</exception>
    public ValueTask<IReadOnlyList<EdgeAddress>> GetEdgesAsync(CancellationToken cancellationToken)
    {
        var cached = _cached;
        if (cached is not null && IsFresh(cached))
        {
            return new(cached.Edges);
        }

        return new(WaitForRefreshAsync(cancellationToken));
    }

    private Task<IReadOnlyList<EdgeAddress>> WaitForRefreshAsync(CancellationToken cancellationToken)
    {
        Task<IReadOnlyList<EdgeAddress>> refresh;
        lock (_lock)
        {
            var cached = _cached;
            if (cached is not null && IsFresh(cached))
            {
                return Task.FromResult(cached.Edges);
            }

            // Task.Run: the lookup never completes inside this lock, so its own clean-up (which takes
            // the lock) always runs after _refresh is set. It runs on no caller's token: one caller
            // giving up must not fail the others sharing it; the lookup has its own bound.
            refresh = _refresh ??= Task.Run(RefreshAsync, CancellationToken.None);
        }

        return refresh.WaitAsync(cancellationToken);
    }

    private async Task<IReadOnlyList<EdgeAddress>> RefreshAsync()
    {
        try
        {
            EdgeAddress[] edges;
            TimeSpan lifetime;
            try
            {
                var result = await LookUpAsync().ConfigureAwait(false);
                edges = SrvOrdering.Order(result.Targets, Random.Shared)
                    .Select(target => new EdgeAddress(target.Host, target.Port) { Addresses = target.Addresses, Priority = target.Priority })
                    .Distinct()
                    .ToArray();
                if (edges.Length == 0)
                {
                    throw new EdgeDiscoveryException($"The SRV name '{SrvName}' lists no edge: it has no SRV records, or only the target '.' (service not available).");
                }

                lifetime = result.Ttl < _cacheFloor ? _cacheFloor
                    : result.Ttl > DiscoveryLimits.SrvCacheCeiling ? DiscoveryLimits.SrvCacheCeiling
                    : result.Ttl;
            }
            catch (Exception ex)
            {
                return KeepServingAfter(ex);
            }

            lock (_lock)
            {
                _lastGood = edges;
                _lastError = null;
                _cached = new CachedEdges(edges, _time.GetTimestamp(), lifetime);
            }

            return edges;
        }
        finally
        {
            lock (_lock)
            {
                _refresh = null;
            }
        }
    }

    private async Task<SrvLookupResult> LookUpAsync()
    {
        using var timeout = new CancellationTokenSource(DiscoveryLimits.SrvLookupTimeout, _time);
        try
        {
            return await _resolver.ResolveSrvAsync(SrvName, timeout.Token).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"The SRV resolver returned no result for '{SrvName}'.");
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException(
                $"The SRV lookup of '{SrvName}' took longer than {DiscoveryLimits.SrvLookupTimeout.TotalSeconds.ToString("0", CultureInfo.InvariantCulture)} s.", ex);
        }
    }

    private IReadOnlyList<EdgeAddress> KeepServingAfter(Exception error)
    {
        lock (_lock)
        {
            _lastError = error;
            var keep = _lastGood ?? _fallback;
            if (keep is not null)
            {
                _cached = new CachedEdges(keep, _time.GetTimestamp(), DiscoveryLimits.SrvRetryAfterFailure);
                return keep;
            }
        }

        throw new EdgeDiscoveryException(
            $"No edge could be discovered through the SRV name '{SrvName}' and no fallback edges are configured: {error.Message}",
            error);
    }

    private bool IsFresh(CachedEdges cached) => _time.GetElapsedTime(cached.FetchedAt) < cached.Lifetime;

    private sealed record CachedEdges(IReadOnlyList<EdgeAddress> Edges, long FetchedAt, TimeSpan Lifetime);
}
