using System.Collections.Immutable;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The other edges of the cluster, kept in step with the store's copy: a <see cref="PeerEdge"/> per
/// registered edge, each probed every <see cref="ClusterOptions.ProbeInterval"/>. Chooses, for a
/// hostname with no local tunnel, the reachable peer with the lowest measured round trip among those
/// holding the route.
/// </summary>
public sealed class PeerSet : BackgroundService
{
    // A probe slower than this counts as lost: the peer is passed over until one gets through.
    private static readonly TimeSpan MinProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly EdgeOptions _options;
    private readonly IRouteStore _store;
    private readonly X509Certificate2 _certificate;
    private readonly X509Certificate2Collection _trustedCas;
    private readonly ILogger _logger;
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
        _certificate = PeerCertificate(options, credentials);
        _trustedCas = credentials.TrustedCas;
        _logger = logger;
        _store.Changed += Sync;
        Sync();
    }

    /// <summary>The certificate this edge shows peers, as server and as client.</summary>
    public X509Certificate2 Certificate => _certificate;

    /// <summary>The CAs whose edge certificates are peers.</summary>
    public X509Certificate2Collection TrustedCas => _trustedCas;

    /// <summary>The route store the set follows.</summary>
    public IRouteStore Store => _store;

    /// <summary>The peers now known, by name.</summary>
    public IReadOnlyDictionary<string, PeerEdge> Peers => _peers;

    /// <summary>
    /// The peer to forward a request for <paramref name="host"/> to: among the edges holding its route,
    /// reachable ones first, then the lowest measured RTT (unmeasured ones last); <c>null</c> when no
    /// other edge holds the route.
    /// </summary>
    public PeerEdge? Choose(string host, IReadOnlyCollection<PeerEdge>? exclude = null)
    {
        var holders = _store.Current.EdgesFor(host);
        var peers = _peers;
        PeerEdge? best = null;
        foreach (var name in holders)
        {
            if (name == _options.Name || !peers.TryGetValue(name, out var peer) || (exclude is not null && exclude.Contains(peer)))
            {
                continue;
            }

            if (best is null || IsBetter(peer, best))
            {
                best = peer;
            }
        }

        return best;
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        base.Dispose();
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

                next[name] = new PeerEdge(record, _certificate, _trustedCas);
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

    private static X509Certificate2 PeerCertificate(EdgeOptions options, EdgeCredentials credentials)
    {
        var cluster = options.Cluster;
        var certificate = cluster.PeerCertificatePath is { Length: > 0 } path
            ? CertificateIssuer.LoadPem(path, cluster.PeerKeyPath is { Length: > 0 } key ? key : throw new InvalidOperationException("Edge:Cluster:PeerCertificatePath needs PeerKeyPath too."))
            : credentials.ServerCertificate;
        if (!PeerCertificates.IsUsableForBothEnds(certificate, out var problem))
        {
            throw new InvalidOperationException($"The edge's peer certificate {cluster.PeerCertificatePath ?? options.ServerCertificatePath} cannot serve the inter-edge port: {problem}.");
        }

        return certificate;
    }
}
