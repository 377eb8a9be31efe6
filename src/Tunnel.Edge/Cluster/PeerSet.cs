using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The other edges of the cluster, kept in step with the store's copy: a <see cref="PeerEdge"/> per
/// registered edge, each probed every <see cref="ClusterOptions.ProbeInterval"/>. Chooses, for a
/// hostname with no local tunnel, the reachable peer with the lowest measured round trip among those
/// holding the route. Trust follows the edge's credentials as they reload: the CAs whose edge
/// certificates are peers are the current bundle (after <c>retire-ca</c>, a retired CA's edges are refused
/// at the next handshake and their open connections closed), and the certificate shown to peers is the
/// current <c>edge.pem</c>, or the <c>--peer-cert</c> file checked again every probe interval.
/// </summary>
internal sealed class PeerSet : BackgroundService
{
    // A probe slower than this counts as lost: the peer is passed over until one gets through.
    private static readonly TimeSpan MinProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly EdgeOptions _options;
    private readonly IRouteStore _store;
    private readonly EdgeCredentials _credentials;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<BaseConnectionContext, X509Certificate2> _inbound = new();
    private volatile X509Certificate2? _peerCertificate;
    private (DateTime, long, DateTime, long) _peerCertificateStamp;
    private readonly Lock _syncLock = new();
    private volatile ImmutableDictionary<string, PeerEdge> _peers = ImmutableDictionary<string, PeerEdge>.Empty;

    /// <summary>Creates the set; it follows <paramref name="store"/> from now on.</summary>
    public PeerSet(EdgeOptions options, IRouteStore store, EdgeCredentials credentials, ILogger<PeerSet> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(credentials);
        _options = options;
        _store = store;
        _credentials = credentials;
        _logger = logger;
        _peerCertificate = PeerCertificate(options, credentials);
        _peerCertificateStamp = PeerCertificateStamp(options.Cluster);
        _credentials.TrustChanged += CloseUntrustedInbound;
        _store.Changed += Sync;
        Sync();
    }

    /// <summary>The certificate this edge shows peers now, as server and as client.</summary>
    public X509Certificate2 Certificate => _peerCertificate ?? _credentials.ServerCertificate;

    /// <summary>The CAs whose edge certificates are peers: the edge's current trust bundle.</summary>
    public X509Certificate2Collection TrustedCas => _credentials.TrustedCas;

    /// <summary>The route store the set follows.</summary>
    public IRouteStore Store => _store;

    /// <summary>The peers now known, by name.</summary>
    public IReadOnlyDictionary<string, PeerEdge> Peers => _peers;

    /// <summary>
    /// The peer to forward a request for <paramref name="host"/> to: among the edges holding its route,
    /// those that publish a ready tunnel for it first (<see cref="PublishedReadiness"/>), then reachable
    /// ones, then the lowest measured RTT (unmeasured ones last); <c>null</c> when no other edge holds the
    /// route. <paramref name="ready"/> says whether the peer chosen publishes ready.
    /// </summary>
    public PeerEdge? Choose(string host, IReadOnlyCollection<PeerEdge>? exclude, out bool ready)
    {
        var snapshot = _store.Current;
        ready = false;
        if (snapshot.MatchRoute(host) is not { } route)
        {
            return null;
        }

        var peers = _peers;
        PeerEdge? best = null;
        foreach (var name in snapshot.Routes[route])
        {
            if (name == _options.Name || !peers.TryGetValue(name, out var peer) || (exclude is not null && exclude.Contains(peer)))
            {
                continue;
            }

            var peerReady = snapshot.IsReady(route, name);
            if (best is null || (peerReady && !ready) || (peerReady == ready && IsBetter(peer, best)))
            {
                best = peer;
                ready = peerReady;
            }
        }

        return best;
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        base.Dispose();
        _credentials.TrustChanged -= CloseUntrustedInbound;
        _store.Changed -= Sync;
        foreach (var peer in _peers.Values)
        {
            peer.Dispose();
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = _options.Cluster.ProbeInterval;
        var timeout = interval > MinProbeTimeout ? interval : MinProbeTimeout;
        using var timer = new PeriodicTimer(interval);
        var wasReachable = new Dictionary<string, bool>(StringComparer.Ordinal);
        try
        {
            do
            {
                ReloadPeerCertificate();
                var peers = _peers.Values.ToArray();
                var results = await Task.WhenAll(peers.Select(p => p.ProbeAsync(timeout, stoppingToken))).ConfigureAwait(false);
                for (var i = 0; i < peers.Length; i++)
                {
                    var before = wasReachable.GetValueOrDefault(peers[i].Name, true);
                    if (before != results[i])
                    {
                        if (results[i])
                        {
                            ClusterLog.PeerReachable(_logger, peers[i].Name, peers[i].Rtt?.TotalMilliseconds ?? 0);
                        }
                        else
                        {
                            ClusterLog.PeerUnreachable(_logger, peers[i].Name, peers[i].Record.Address);
                        }
                    }

                    wasReachable[peers[i].Name] = results[i];
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static bool IsBetter(PeerEdge candidate, PeerEdge best)
    {
        if (candidate.IsReachable != best.IsReachable)
        {
            return candidate.IsReachable;
        }

        return (candidate.Rtt, best.Rtt) switch
        {
            ({ } a, { } b) => a < b,
            ({ }, null) => true,
            _ => false,
        };
    }

    private void Sync()
    {
        var edges = _store.Current.Edges;
        List<PeerEdge> removed = [];
        lock (_syncLock)
        {
            var peers = _peers;
            var next = peers.ToBuilder();
            foreach (var (name, record) in edges)
            {
                if (name == _options.Name)
                {
                    continue;
                }

                if (peers.TryGetValue(name, out var existing))
                {
                    if (existing.Record == record)
                    {
                        continue;
                    }

                    // Restarted elsewhere, or in another region: a fresh connection to the new address.
                    removed.Add(existing);
                }

                next[name] = new PeerEdge(record, this);
                ClusterLog.PeerAdded(_logger, name, record.Region, record.Address);
            }

            foreach (var (name, peer) in peers)
            {
                if (!edges.ContainsKey(name))
                {
                    next.Remove(name);
                    removed.Add(peer);
                    ClusterLog.PeerRemoved(_logger, name);
                }
            }

            _peers = next.ToImmutable();
        }

        // In-flight requests to a removed peer hold the invoker; let them end before it goes.
        foreach (var peer in removed)
        {
            _ = Task.Delay(TimeSpan.FromMinutes(1)).ContinueWith(_ => peer.Dispose(), TaskScheduler.Default);
        }
    }

    /// <summary>
    /// Follows a connection accepted on the inter-edge port (after its mutual TLS handshake) until it
    /// ends, so a change of trust can close it; dispose the result when the connection ends.
    /// </summary>
    internal IDisposable TrackInbound(BaseConnectionContext connection)
    {
        if (connection.Features.Get<ITlsConnectionFeature>()?.ClientCertificate is not { } certificate)
        {
            return NoTracking.Instance;
        }

        _inbound[connection] = certificate;
        return new InboundTracking(this, connection);
    }

    /// <summary>After the trust bundle changed: peers whose certificates no longer pass are cut off now.</summary>
    private void CloseUntrustedInbound()
    {
        var trusted = TrustedCas;
        foreach (var (connection, certificate) in _inbound)
        {
            if (!PeerCertificates.IsPeerCertificate(certificate, trusted, out var problem) && _inbound.TryRemove(connection, out _))
            {
                ClusterLog.PeerConnectionClosedUntrusted(_logger, certificate.Subject, problem);
                connection.Abort(new ConnectionAbortedException("The peer's certificate is no longer trusted: " + problem));
            }
        }
    }

    /// <summary>Takes a changed <c>--peer-cert</c> file (a renewal); a file that does not load or cannot serve is logged and the current certificate kept.</summary>
    private void ReloadPeerCertificate()
    {
        var cluster = _options.Cluster;
        if (cluster.PeerCertificatePath is not { Length: > 0 } path)
        {
            return;
        }

        var stamp = PeerCertificateStamp(cluster);
        if (stamp == _peerCertificateStamp)
        {
            return;
        }

        _peerCertificateStamp = stamp;
        try
        {
            var certificate = PeerCertificate(_options, _credentials)!;
            _peerCertificate = certificate;
            ClusterLog.PeerCertificateReloaded(_logger, certificate.Subject, certificate.SerialNumber, certificate.NotAfter.ToUniversalTime());
        }
        catch (InvalidOperationException ex)
        {
            // Tried again on the next look: a renewal written in two steps may be read between them.
            _peerCertificateStamp = default;
            ClusterLog.PeerCertificateReloadFailed(_logger, path, ex.Message);
        }
    }

    /// <summary>The <c>--peer-cert</c> certificate, or <c>null</c> when the peer port shows the (reloaded) server certificate.</summary>
    private static X509Certificate2? PeerCertificate(EdgeOptions options, EdgeCredentials credentials)
    {
        var cluster = options.Cluster;
        var certificate = cluster.PeerCertificatePath is { Length: > 0 } path
            ? CertificateIssuer.LoadPem(path, cluster.PeerKeyPath is { Length: > 0 } key ? key : throw new InvalidOperationException("Edge:Cluster:PeerCertificatePath needs PeerKeyPath too."))
            : credentials.ServerCertificate;
        if (!PeerCertificates.IsUsableForBothEnds(certificate, out var problem))
        {
            throw new InvalidOperationException($"The edge's peer certificate {cluster.PeerCertificatePath ?? options.ServerCertificatePath} cannot serve the inter-edge port: {problem}.");
        }

        return cluster.PeerCertificatePath is { Length: > 0 } ? certificate : null;
    }

    private static (DateTime, long, DateTime, long) PeerCertificateStamp(ClusterOptions cluster)
    {
        if (cluster.PeerCertificatePath is not { Length: > 0 } path)
        {
            return default;
        }

        var certificate = new FileInfo(path);
        var key = new FileInfo(cluster.PeerKeyPath is { Length: > 0 } keyPath ? keyPath : path);
        return (certificate.Exists ? certificate.LastWriteTimeUtc : default, certificate.Exists ? certificate.Length : -1,
            key.Exists ? key.LastWriteTimeUtc : default, key.Exists ? key.Length : -1);
    }

    private sealed class InboundTracking(PeerSet set, BaseConnectionContext connection) : IDisposable
    {
        public void Dispose() => set._inbound.TryRemove(connection, out _);
    }

    private sealed class NoTracking : IDisposable
    {
        public static readonly NoTracking Instance = new();

        public void Dispose()
        {
        }
    }
}
