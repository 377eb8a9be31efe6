using System.Collections.Immutable;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The clustered route store on etcd. Two loops: one keeps this edge's lease alive and writes under it
/// the edge's record and a key per hostname it holds live tunnels for (reconciled with the
/// <see cref="RouteTable"/> whenever that changes, and again after any outage); the other reads every
/// key once, then watches from that revision, keeping the local copy that requests consult. Neither
/// loop is ever awaited by a request: with etcd gone the edge keeps its last copy and its own tunnels,
/// and both loops catch up when etcd answers again. Revocations travel the same way: the publishing loop
/// writes every revocation of this edge's file the cluster does not hold yet (no lease: they outlive the
/// edge), and each copy read hands the cluster's revocations to <see cref="EdgeCredentials"/>, so a
/// revocation made at one edge closes the credential's tunnels at every edge within seconds.
/// </summary>
internal sealed class EtcdRouteStore : BackgroundService, IRouteStore
{
    // Retrying an unreachable etcd: quick enough that a returning store is noticed within about a
    // second, slow enough to cost nothing while it is down.
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(1);

    // Revoking the lease on shutdown is a courtesy (it expires anyway): never hold up the stop for it.
    private static readonly TimeSpan RevokeTimeout = TimeSpan.FromSeconds(2);

    // How often the published readiness is compared with the tunnels' when no change was signalled: a
    // connection that went silent or began draining changes nothing the route table announces.
    private static readonly TimeSpan ReadinessRecheckInterval = TimeSpan.FromSeconds(1);

    private readonly EdgeOptions _options;
    private readonly ClusterOptions _cluster;
    private readonly RouteTable _routes;
    private readonly EtcdGateway _etcd;
    private readonly ILogger _logger;
    private readonly EdgeCredentials _credentials;
    private readonly TimeProvider _time;
    private readonly Channel<bool> _routesChanged = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly TaskCompletionSource<string> _advertised = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _watchLock = new();
    private CancellationTokenSource _watchRestart = new();
    private volatile ClusterSnapshot _current = ClusterSnapshot.Empty;
    private volatile bool _publishConnected;
    private volatile bool _watchConnected;
    private long _leaseId;

    /// <summary>Creates the store; it starts working once <see cref="Announce"/> gives the inter-edge address.</summary>
    public EtcdRouteStore(EdgeOptions options, RouteTable routes, EdgeCredentials credentials, ILogger<EtcdRouteStore> logger, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(routes);
        ArgumentNullException.ThrowIfNull(credentials);
        _options = options;
        _credentials = credentials;
        _cluster = options.Cluster;
        _routes = routes;
        _logger = logger;
        _etcd = new EtcdGateway(_cluster.StoreEndpoints, CallTimeout(_cluster.LeaseTtl), EtcdTlsOptions.From(_cluster), EtcdLogin.From(_cluster));
        _time = time ?? TimeProvider.System;
        _routes.HostnamesChanged += () => _routesChanged.Writer.TryWrite(true);

        // A route's readiness travels in its key's value: a change wakes the publishing loop too.
        _routes.ReadinessChanged += () => _routesChanged.Writer.TryWrite(true);

        // A revocation in this edge's file (the admin API, or tunnel-edge revoke --dir) wakes the
        // publishing loop as a route change does.
        _credentials.TrustChanged += () => _routesChanged.Writer.TryWrite(true);
    }

    /// <inheritdoc />
    public ClusterSnapshot Current => _current;

    /// <inheritdoc />
    public bool IsConnected => _publishConnected && _watchConnected;

    /// <summary>The lease this edge's keys live under, 0 before the first grant.</summary>
    public long LeaseId => Interlocked.Read(ref _leaseId);

    /// <inheritdoc />
    public event Action? Changed;

    /// <summary>Gives the address peers dial (known once the inter-edge port is bound); starts publishing.</summary>
    public void Announce(string advertiseAddress) => _advertised.TrySetResult(advertiseAddress);

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        var lease = LeaseId;
        if (lease != 0)
        {
            // Peers stop forwarding here at once rather than when the lease runs out.
            using var revoke = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            revoke.CancelAfter(RevokeTimeout);
            try
            {
                await _etcd.RevokeLeaseAsync(lease, revoke.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is EtcdException or OperationCanceledException)
            {
                ClusterLog.LeaseNotRevoked(_logger, ex.Message);
            }
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        base.Dispose();
        _etcd.Dispose();
        _watchRestart.Dispose();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        string address;
        try
        {
            address = await _advertised.Task.WaitAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var self = new EdgeRecord(_options.Name, _options.Region, address);
        ClusterLog.Joining(_logger, self.Name, self.Address, string.Join(", ", _cluster.StoreEndpoints), _cluster.LeaseTtl.TotalSeconds);
        await Task.WhenAll(PublishAsync(self, stoppingToken), WatchAsync(stoppingToken)).ConfigureAwait(false);
    }

    /// <summary>Keeps the lease alive and the keys under it equal to the edge's record and live hostnames.</summary>
    private async Task PublishAsync(EdgeRecord self, CancellationToken stoppingToken)
    {
        var state = new PublishState(_cluster.LeaseTtl / 3, _time);
        var retryDelay = FirstRetryDelay;
        string? failingReason = null; // Why etcd is out of reach; null while it answers.
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await PublishOnceAsync(self, state, stoppingToken).ConfigureAwait(false))
                {
                    continue;
                }

                _publishConnected = true;
                if (failingReason is not null)
                {
                    failingReason = null;
                    ClusterLog.StoreReachable(_logger);
                }

                retryDelay = FirstRetryDelay;
                await WaitForRouteChangeAsync(NextWake(state), stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is EtcdException or HttpRequestException or IOException or OperationCanceledException && !stoppingToken.IsCancellationRequested)
            {
                failingReason = ReportStoreUnreachable(ex, failingReason);
                try
                {
                    await Task.Delay(retryDelay, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, MaxRetryDelay.Ticks));
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// One round of publishing: a lease and the edge's record when there is no lease, the keepalive when due,
    /// then the route and revocation keys. False when the lease turned out expired (the next round starts over).
    /// </summary>
    private async Task<bool> PublishOnceAsync(EdgeRecord self, PublishState state, CancellationToken stoppingToken)
    {
        if (LeaseId == 0)
        {
            var lease = await _etcd.GrantLeaseAsync(_cluster.LeaseTtl, stoppingToken).ConfigureAwait(false);
            state.Written.Clear();
            await _etcd.PutAsync(ClusterSnapshot.EdgeKey(_cluster.KeyPrefix, self.Name), ClusterSnapshot.EdgeValue(self), lease, stoppingToken).ConfigureAwait(false);
            Interlocked.Exchange(ref _leaseId, lease);
            state.NextKeepAlive = DateTime.UtcNow + state.KeepAliveEvery;
            ClusterLog.LeaseGranted(_logger, lease, _cluster.LeaseTtl.TotalSeconds);
        }

        if (DateTime.UtcNow >= state.NextKeepAlive)
        {
            var ttl = await _etcd.KeepAliveOnceAsync(LeaseId, stoppingToken).ConfigureAwait(false);
            if (ttl <= 0)
            {
                // Expired while etcd could not be reached for longer than the TTL: start over,
                // and every key is written again under the new lease.
                ClusterLog.LeaseLost(_logger, LeaseId);
                Interlocked.Exchange(ref _leaseId, 0);
                return false;
            }

            state.NextKeepAlive = DateTime.UtcNow + state.KeepAliveEvery;
        }

        state.RecheckIn = await PublishRoutesAsync(self, state.Written, stoppingToken).ConfigureAwait(false);
        await PublishRevocationsAsync(state.RevocationsWritten, stoppingToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Writes a route key, saying whether a tunnel for it is ready (<see cref="PublishedReadiness"/>), for each
    /// hostname the edge serves that has none or whose readiness changed, and deletes those it no longer serves.
    /// Returns when to look again for a change of readiness held back (<see cref="RouteKeyWrites"/>), if any.
    /// </summary>
    private async Task<TimeSpan?> PublishRoutesAsync(EdgeRecord self, RouteKeyWrites written, CancellationToken stoppingToken)
    {
        // Drain the signal before reading the table, so a change during the writes is not lost.
        _routesChanged.Reader.TryRead(out _);
        var desired = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var hostname in _routes.Hostnames())
        {
            desired[hostname] = PublishedReadiness.HasReadyTunnel(_routes, hostname);
        }

        var plan = written.Plan(desired);
        foreach (var (hostname, ready) in plan.Writes)
        {
            var before = written.Published(hostname);
            await _etcd.PutAsync(ClusterSnapshot.RouteKey(_cluster.KeyPrefix, hostname, self.Name), PublishedReadiness.Value(ready), LeaseId, stoppingToken).ConfigureAwait(false);
            written.Wrote(hostname, ready);
            if (before != ready && (before is not null || !ready))
            {
                // A new route that is ready says nothing worth a line; a change, or a route starting not ready, does.
                ReadinessPublishLog.Published(_logger, hostname, ReadinessPublishLog.State(ready));
            }
        }

        foreach (var hostname in plan.Deletes)
        {
            await _etcd.DeleteAsync(ClusterSnapshot.RouteKey(_cluster.KeyPrefix, hostname, self.Name), stoppingToken).ConfigureAwait(false);
            written.Deleted(hostname);
        }

        return plan.RecheckIn;
    }

    /// <summary>
    /// How long the publishing loop may sleep unless woken: to the next keepalive, or sooner to write a
    /// change of readiness held back, or to compare the published readiness with the tunnels' again.
    /// </summary>
    private static TimeSpan NextWake(PublishState state)
    {
        var wake = state.NextKeepAlive - DateTime.UtcNow;
        var recheck = state.RecheckIn ?? (state.Written.Count > 0 ? ReadinessRecheckInterval : wake);
        return recheck < wake ? recheck : wake;
    }

    /// <summary>Waits until the routes change or the wait (to the next keepalive) is over.</summary>
    private async Task WaitForRouteChangeAsync(TimeSpan wait, CancellationToken stoppingToken)
    {
        if (wait <= TimeSpan.Zero)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(wait);
        try
        {
            await _routesChanged.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Logs that etcd is out of reach, once per reason; returns the reason.</summary>
    private string ReportStoreUnreachable(Exception ex, string? failingReason)
    {
        _publishConnected = false;
        var reason = ex is OperationCanceledException ? $"no answer within {_etcd.CallTimeout.TotalSeconds:0.#} s" : ex.Message;
        if (failingReason is null)
        {
            ClusterLog.StoreUnreachable(_logger, reason);

            // A watch on a half-dead connection may never notice; read everything again once
            // etcd answers.
            RestartWatch();
        }
        else if (reason != failingReason)
        {
            // Still out of reach, for another reason (a timeout, then a refused login, say):
            // the operator needs the one that explains it.
            ClusterLog.StoreUnreachable(_logger, reason);
        }

        return reason;
    }

    /// <summary>Reads every key, then follows changes from that revision; after any break, reads again.</summary>
    private async Task WatchAsync(CancellationToken stoppingToken)
    {
        var retryDelay = FirstRetryDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            CancellationToken restart;
            lock (_watchLock)
            {
                if (_watchRestart.IsCancellationRequested)
                {
                    _watchRestart.Dispose();
                    _watchRestart = new CancellationTokenSource();
                }

                restart = _watchRestart.Token;
            }

            using var watch = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, restart);
            try
            {
                var (revision, pairs) = await _etcd.RangePrefixAsync(_cluster.KeyPrefix, watch.Token).ConfigureAwait(false);
                var keys = pairs.ToImmutableDictionary(StringComparer.Ordinal);
                Publish(ClusterSnapshot.From(revision, _cluster.KeyPrefix, keys));
                _watchConnected = true;
                retryDelay = FirstRetryDelay;
                await foreach (var batch in _etcd.WatchPrefixAsync(_cluster.KeyPrefix, revision + 1, watch.Token).ConfigureAwait(false))
                {
                    if (batch.Changes.Count == 0)
                    {
                        continue;
                    }

                    foreach (var change in batch.Changes)
                    {
                        keys = change.Value is null ? keys.Remove(change.Key) : keys.SetItem(change.Key, change.Value);
                    }

                    Publish(ClusterSnapshot.From(Math.Max(batch.Revision, revision), _cluster.KeyPrefix, keys));
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is EtcdException or HttpRequestException or IOException or OperationCanceledException)
            {
                _watchConnected = false;
                ClusterLog.WatchBroken(_logger, ex.Message);
                try
                {
                    await Task.Delay(retryDelay, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
    }

    private void RestartWatch()
    {
        lock (_watchLock)
        {
            _watchRestart.Cancel();
        }
    }

    /// <summary>Writes the revocations of this edge's file that neither this loop nor the cluster's copy has.</summary>
    private async Task PublishRevocationsAsync(HashSet<string> written, CancellationToken stoppingToken)
    {
        var known = _current.Revocations;
        foreach (var revoked in _credentials.FileRevocations.Entries)
        {
            if (written.Contains(revoked.Id) || known.Any(k => string.Equals(k.Id, revoked.Id, StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            await _etcd.PutAsync(ClusterSnapshot.RevokedKey(_cluster.KeyPrefix, revoked.Id), ClusterSnapshot.RevokedValue(revoked), 0, stoppingToken).ConfigureAwait(false);
            written.Add(revoked.Id);
            ClusterLog.RevocationPublished(_logger, revoked.Id);
        }
    }

    private void Publish(ClusterSnapshot snapshot)
    {
        var previous = _current;
        _current = snapshot;
        if (!snapshot.Revocations.IsEmpty || !previous.Revocations.IsEmpty)
        {
            var added = _credentials.UseClusterRevocations(new RevocationList(snapshot.Revocations));
            if (added > 0)
            {
                ClusterLog.RevocationsApplied(_logger, added, _credentials.Revocations.Entries.Count);
            }
        }

        Changed?.Invoke();
    }

    /// <summary>A call slower than a third of the TTL would let the lease lapse between keepalives.</summary>
    private static TimeSpan CallTimeout(TimeSpan leaseTtl) => TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, leaseTtl.Ticks / 3));

    /// <summary>What the publishing loop keeps between rounds.</summary>
    private sealed class PublishState(TimeSpan keepAliveEvery, TimeProvider time)
    {
        /// <summary>A third of the lease's TTL: two keepalives can fail before it expires.</summary>
        public TimeSpan KeepAliveEvery { get; } = keepAliveEvery;

        /// <summary>The hostnames whose route keys are written under the current lease, and the readiness each says.</summary>
        public RouteKeyWrites Written { get; } = new(time);

        /// <summary>When a change of readiness held back is due to be written, <c>null</c> when none is.</summary>
        public TimeSpan? RecheckIn { get; set; }

        /// <summary>The revoked credential ids written to the store.</summary>
        public HashSet<string> RevocationsWritten { get; } = new(StringComparer.OrdinalIgnoreCase);

        public DateTime NextKeepAlive { get; set; } = DateTime.UtcNow;
    }
}
