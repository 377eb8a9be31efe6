using System.Diagnostics.Metrics;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The cluster's instruments, on the edge's meter (<c>Tunnel.Edge</c>): peers, their round trips and
/// how many routes each holds, whether the store answers, and requests forwarded to and received from
/// peers. Peer names are an attribute: the operator bounds their number.
/// </summary>
internal sealed class ClusterMetrics
{
    private const string PeerAttribute = "tunnel.peer.name";

    private readonly Counter<long> _forwarded;
    private readonly Counter<long> _received;

    /// <summary>Creates the instruments.</summary>
    public ClusterMetrics(IMeterFactory meterFactory, PeerSet peers, IRouteStore store)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(peers);
        ArgumentNullException.ThrowIfNull(store);
        var meter = meterFactory.Create(EdgeMetrics.MeterName);
        meter.CreateObservableUpDownCounter("tunnel.edge.cluster.peers", () => peers.Peers.Count, "{edge}", "Other edges of the cluster this edge knows.");
        meter.CreateObservableGauge("tunnel.edge.cluster.peer.rtt", () => Each(peers, p => p.Rtt?.TotalSeconds), "s", "Smoothed round-trip time of the probes to each peer, by tunnel.peer.name.");
        meter.CreateObservableGauge("tunnel.edge.cluster.peer.reachable", () => Each<int>(peers, p => p.IsReachable ? 1 : 0), unit: null, description: "1 when the last probe or request reached the peer, by tunnel.peer.name.");
        meter.CreateObservableGauge("tunnel.edge.cluster.peer.routes", () => Each<int>(peers, p => store.Current.RoutesOf(p.Name).Count()), "{route}", "Hostnames each peer holds live tunnels for, by this edge's copy, by tunnel.peer.name.");
        meter.CreateObservableGauge("tunnel.edge.cluster.peer.routes.not_ready", () => Each<int>(peers, p => NotReadyRoutes(store.Current, p.Name)), "{route}",
            "Hostnames each peer holds live tunnels for but publishes no ready one for (its apps report not ready), by this edge's copy, by tunnel.peer.name.");
        meter.CreateObservableGauge("tunnel.edge.cluster.store.connected", () => store.IsConnected ? 1 : 0, unit: null, description: "1 when the route store (etcd) answers, 0 while the edge serves from its last copy.");
        _forwarded = meter.CreateCounter<long>("tunnel.edge.cluster.forwarded", "{request}", "Visitor requests with no local tunnel forwarded to a peer, by tunnel.peer.name and outcome (forwarded, failed).");
        _received = meter.CreateCounter<long>("tunnel.edge.cluster.received", "{request}", "Requests peers forwarded to this edge, by tunnel.peer.name.");
    }

    /// <summary>Counts a request forwarded to a peer.</summary>
    public void Forwarded(string peer, bool reached) =>
        _forwarded.Add(1, new KeyValuePair<string, object?>(PeerAttribute, peer), new KeyValuePair<string, object?>("outcome", reached ? "forwarded" : "failed"));

    /// <summary>Counts a request a peer forwarded here.</summary>
    public void Received(string peer) => _received.Add(1, new KeyValuePair<string, object?>(PeerAttribute, peer));

    private static int NotReadyRoutes(ClusterSnapshot snapshot, string peer) => snapshot.NotReady.Count(r => r.Value.Contains(peer));

    private static IEnumerable<Measurement<T>> Each<T>(PeerSet peers, Func<PeerEdge, T?> value)
        where T : struct
    {
        foreach (var peer in peers.Peers.Values)
        {
            if (value(peer) is { } measured)
            {
                yield return new Measurement<T>(measured, new KeyValuePair<string, object?>(PeerAttribute, peer.Name));
            }
        }
    }
}
