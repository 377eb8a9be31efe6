namespace Tunnel.Edge.Cluster;

/// <summary>
/// Joins the edge to a cluster of edges that share their routes through etcd (section
/// <c>Edge:Cluster</c>). The node's name and region are the edge's <see cref="EdgeOptions.Name"/> and
/// <see cref="EdgeOptions.Region"/>; names must be unique in the cluster.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>The inter-edge port's default: the tunnel port plus one.</summary>
    public const int DefaultPeerPort = 7845;

    /// <summary>
    /// etcd client URLs (<c>http://10.0.0.5:2379</c>), spoken to through etcd's v3 JSON gateway. An
    /// empty list keeps the edge on its own: routes in memory, no inter-edge port.
    /// </summary>
    /// <remarks>Defaults to empty (no cluster).</remarks>
    public List<string> StoreEndpoints { get; set; } = [];

    /// <summary>
    /// PEM file of the CA certificates that an <c>https://</c> etcd endpoint's certificate must chain
    /// to (etcd's <c>--trusted-ca-file</c> side is <see cref="StoreCertificatePath"/>).
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: the system's trusted roots.</remarks>
    public string? StoreCaPath { get; set; }

    /// <summary>
    /// PEM file of the client certificate the edge presents to etcd, for an etcd that runs with
    /// <c>--client-cert-auth</c>. It needs the client-authentication usage and a CA etcd trusts.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: no client certificate.</remarks>
    public string? StoreCertificatePath { get; set; }

    /// <summary>PEM file with the key of <see cref="StoreCertificatePath"/>.</summary>
    /// <remarks>Defaults to <see cref="StoreCertificatePath"/> itself (one PEM holding both).</remarks>
    public string? StoreKeyPath { get; set; }

    /// <summary>
    /// The etcd user the edge logs in as, for an etcd with authentication enabled; it needs read and
    /// write access to <see cref="KeyPrefix"/>.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: no login.</remarks>
    public string? StoreUsername { get; set; }

    /// <summary>
    /// The password of <see cref="StoreUsername"/>. Give it through the environment
    /// (<c>TUNNEL_EDGE_Edge__Cluster__StorePassword</c>) or a file (<c>--etcd-password-file</c>), not
    /// a command line that other users can read.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public string? StorePassword { get; set; }

    /// <summary>The prefix of every key the cluster writes, so several clusters can share one etcd.</summary>
    /// <remarks>Defaults to <c>/tunnel/</c>.</remarks>
    public string KeyPrefix { get; set; } = "/tunnel/";

    /// <summary>
    /// The TTL of the lease the edge's keys live under. A dead edge's routes vanish from the cluster
    /// this long after its last keepalive; the edge renews the lease three times per TTL.
    /// </summary>
    /// <remarks>Defaults to 5 seconds. etcd refuses TTLs below its own minimum (about 1.5 s by default).</remarks>
    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The IP address the inter-edge port listens on.</summary>
    /// <remarks>Defaults to <c>0.0.0.0</c>.</remarks>
    public string PeerAddress { get; set; } = "0.0.0.0";

    /// <summary>The inter-edge port: HTTP/2 over mutual TLS, reached only by edges with a certificate from the edge CA.</summary>
    /// <remarks>Defaults to 7845. 0 picks a free port (tests).</remarks>
    public int PeerPort { get; set; } = DefaultPeerPort;

    /// <summary>
    /// The <c>host:port</c> the other edges dial to reach this one, written to etcd; the edge's peer
    /// certificate must name the host.
    /// </summary>
    /// <remarks>
    /// Defaults to <see cref="PeerAddress"/> with the port the edge listens on; required when
    /// <see cref="PeerAddress"/> is a wildcard address (<c>0.0.0.0</c>, <c>::</c>).
    /// </remarks>
    public string? AdvertiseAddress { get; set; }

    /// <summary>
    /// PEM file of the certificate the edge presents on the inter-edge port, both as server and as
    /// client; it must be issued by the edge CA for both uses (<c>tunnel-edge issue-edge</c>, or
    /// <c>edge.pem</c> from <c>tunnel-edge init</c>).
    /// </summary>
    /// <remarks>Defaults to the edge's <see cref="EdgeOptions.ServerCertificatePath"/>.</remarks>
    public string? PeerCertificatePath { get; set; }

    /// <summary>PEM file with the key of <see cref="PeerCertificatePath"/>.</summary>
    /// <remarks>Defaults to the edge's <see cref="EdgeOptions.ServerKeyPath"/>.</remarks>
    public string? PeerKeyPath { get; set; }

    /// <summary>How often the edge measures its round trip to each peer.</summary>
    /// <remarks>Defaults to 1 second: a slowed path shows within a few seconds, at one tiny request per peer per second.</remarks>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether the edge is in a cluster.</summary>
    public bool IsEnabled => StoreEndpoints.Count > 0;
}
