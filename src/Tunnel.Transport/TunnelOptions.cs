using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Dial.Redial;

namespace Tunnel.Transport;

/// <summary>
/// Configures the tunnel transport. Bound from the <c>Tunnel</c> configuration section, then from the
/// delegate given to <c>UseTunnelTransport</c>.
/// </summary>
public sealed class TunnelOptions
{
    /// <summary>The configuration section the options are bound from.</summary>
    public const string SectionName = "Tunnel";

    /// <summary>
    /// Path of the credential file that <c>tunnel-edge issue</c> writes: the origin certificate and key,
    /// the edge CA to pin, where the edges are and the hostnames the credential covers. With it, no other
    /// option is needed. Options set explicitly win over what the file holds: <see cref="Edges"/>,
    /// <see cref="Hostnames"/>, <see cref="EdgeServerName"/>, the certificate
    /// (<see cref="Certificate"/>, <see cref="CertificatePath"/>) and the edge CAs
    /// (<see cref="EdgeCaPath"/>, <see cref="EdgeCaCertificates"/>) each replace the file's.
    /// The file is watched: a renewed credential is used for new dials and replaces the open tunnel
    /// connections one at a time, without dropping a request.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>. Bound from <c>Tunnel:CredentialPath</c> (environment <c>Tunnel__CredentialPath</c>).</remarks>
    public string? CredentialPath { get; set; }

    /// <summary>
    /// How often the credential files (<see cref="CredentialPath"/>, or <see cref="CertificatePath"/>,
    /// <see cref="CertificateKeyPath"/> and <see cref="EdgeCaPath"/>) are read to catch a change that the
    /// file system watcher missed, and the certificate's expiry is checked. A change the watcher sees is
    /// picked up within a fraction of a second.
    /// </summary>
    /// <remarks>Defaults to 1 minute.</remarks>
    public TimeSpan CredentialCheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long before the origin certificate expires the plugin starts warning (a log warning and a
    /// Degraded health check), so that a renewal that did not happen is noticed while the tunnel still works.
    /// A certificate valid for less than three times this long is warned about in the last third of its
    /// lifetime instead, so that short-lived, automatically renewed certificates do not warn from the start.
    /// </summary>
    /// <remarks>Defaults to 7 days.</remarks>
    public TimeSpan CertificateExpiryWarning { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// The edges to dial, as <c>host:port</c> (the port defaults to 7844), or one SRV name as
    /// <c>srv:_tunnel._tcp.example.com</c>. With an SRV name, any <c>host:port</c> entries are the
    /// fallback used while DNS has never answered. Required, at least one entry, unless the
    /// credential file (<see cref="CredentialPath"/>) names the edges.
    /// </summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> Edges { get; set; } = [];

    /// <summary>
    /// DNS servers (<c>ip</c> or <c>ip:port</c>) for the SRV lookup. UDP first, TCP when the answer is
    /// truncated; each server in turn on timeout.
    /// </summary>
    /// <remarks>Defaults to empty: the nameservers of /etc/resolv.conf.</remarks>
    public List<string> DnsServers { get; set; } = [];

    /// <summary>
    /// The hostnames this app serves; the origin certificate must cover each. Required, at least one,
    /// unless the credential file (<see cref="CredentialPath"/>) names them: then every name it covers is
    /// registered, a <c>*.example.com</c> entry as a wildcard route.
    /// </summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> Hostnames { get; set; } = [];

    /// <summary>How many tunnel connections to keep open, each supervised on its own.</summary>
    /// <remarks>Defaults to 4. Between 1 and 64.</remarks>
    public int HaConnections { get; set; } = 4;

    /// <summary>Path of the origin certificate (PEM), issued by the edge's CA. Its key may be in the same file.</summary>
    /// <remarks>Defaults to <c>null</c>; this, <see cref="Certificate"/> or <see cref="CredentialPath"/> is required. Watched like the credential file.</remarks>
    public string? CertificatePath { get; set; }

    /// <summary>Path of the origin certificate's private key (PEM), when it is not in <see cref="CertificatePath"/>.</summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public string? CertificateKeyPath { get; set; }

    /// <summary>The origin certificate with its private key; takes precedence over <see cref="CertificatePath"/>.</summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public X509Certificate2? Certificate { get; set; }

    /// <summary>
    /// Path of a PEM bundle with the edge CA certificate(s) the edges' server certificates must chain to.
    /// When neither this nor <see cref="EdgeCaCertificates"/> is set, the credential file's edge CA is pinned,
    /// or without one the system's trusted roots are used.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public string? EdgeCaPath { get; set; }

    /// <summary>
    /// Edge CA certificates to trust, added to those of <see cref="EdgeCaPath"/>. Either one set replaces
    /// the credential file's edge CA.
    /// </summary>
    /// <remarks>Defaults to empty.</remarks>
    public X509Certificate2Collection EdgeCaCertificates { get; } = [];

    /// <summary>
    /// The TLS server name sent to every edge and checked in its certificate, when the edge addresses
    /// are IP addresses or differ from the certificate's name.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: the credential file's, else each edge address's host.</remarks>
    public string? EdgeServerName { get; set; }

    /// <summary>
    /// Accept any edge certificate without validation. Anyone on the path can then impersonate the edge
    /// and read all traffic: only for throw-away experiments. Refused at start outside the
    /// <c>Development</c> environment, and every dial logs a warning while it is on. It does not apply
    /// while an edge CA is pinned (the credential file's, <see cref="EdgeCaPath"/> or
    /// <see cref="EdgeCaCertificates"/>): the pinned CA is still checked unless
    /// <see cref="DangerousAcceptAnyEdgeCertificateOverridesPinnedCa"/> is on too.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool DangerousAcceptAnyEdgeCertificate { get; set; }

    /// <summary>
    /// Lets <see cref="DangerousAcceptAnyEdgeCertificate"/> override a pinned edge CA (the credential
    /// file's, <see cref="EdgeCaPath"/> or <see cref="EdgeCaCertificates"/>), so that an edge whose
    /// certificate the pinned CA did not issue is accepted. A second, explicit switch, because the pin is
    /// what the credential promises; on its own it is an error, and like the first it is refused outside
    /// the <c>Development</c> environment.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool DangerousAcceptAnyEdgeCertificateOverridesPinnedCa { get; set; }

    /// <summary>Identifies this process (replica) to the edges.</summary>
    /// <remarks>Defaults to <c>null</c>: a new random id per process start.</remarks>
    public string? ConnectorId { get; set; }

    /// <summary>How long a TCP connect to an edge may take.</summary>
    /// <remarks>Defaults to 5 seconds.</remarks>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long an edge that failed a dial is set aside before a slot tries it again.</summary>
    /// <remarks>Defaults to 10 seconds.</remarks>
    public TimeSpan EdgeCoolDown { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the spread of connections over the edges is checked. When an edge holds two or more
    /// connections more than another known edge that is up (a restarted edge, or one newly listed in
    /// DNS), one connection moves there: the replacement is dialed first, and the old connection serves
    /// until it is registered, then closes gracefully. A failed move leaves the connection where it was,
    /// and that edge is tried less and less often (its cool-down doubled per failure, up to 5 minutes).
    /// <see cref="TimeSpan.Zero"/> or <see cref="Timeout.InfiniteTimeSpan"/> turns the check off.
    /// </summary>
    /// <remarks>Defaults to 30 seconds.</remarks>
    public TimeSpan RebalanceInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The tag of the app's health checks (<c>AddHealthChecks().AddCheck(..., tags: ["ready"])</c>) that say
    /// whether it can take requests. While any check with this tag reports Unhealthy, every tunnel
    /// connection asks its edge to send it no new requests (requests already on it finish; other replicas
    /// take the traffic); when they report Healthy or Degraded again, it takes requests again. With no
    /// check carrying the tag, or no health checks added at all, the app is always ready.
    /// <c>null</c> or empty turns this off.
    /// </summary>
    /// <remarks>Defaults to <c>ready</c>.</remarks>
    public string? ReadinessTag { get; set; } = "ready";

    /// <summary>
    /// How often the <see cref="ReadinessTag"/> checks run. A change is sent to the edges at once, so the
    /// edge follows the app within this interval plus one round trip. <see cref="TimeSpan.Zero"/> or
    /// <see cref="Timeout.InfiniteTimeSpan"/> turns readiness following off.
    /// </summary>
    /// <remarks>Defaults to 500 milliseconds, so the edge stops choosing a replica within a second of a failing check.</remarks>
    public TimeSpan ReadinessCheckInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The redial schedule: exponential backoff with full jitter, capped, reset after a stable period.</summary>
    /// <remarks>Defaults to 1 s base, 30 s cap, 5 s stable period.</remarks>
    public RedialBackoffOptions Redial { get; set; } = new();

    /// <summary>
    /// Kestrel's HTTP/2 keepalive PING delay, applied when the app has not set
    /// <c>KestrelServerOptions.Limits.Http2.KeepAlivePingDelay</c> itself. With
    /// <see cref="KeepAlivePingTimeout"/> it bounds how long a dead tunnel goes unnoticed.
    /// </summary>
    /// <remarks>Defaults to 2 seconds: with the 3 s timeout a black-holed tunnel is dropped, and redialed, within about 6 s.</remarks>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Kestrel's HTTP/2 keepalive PING timeout, applied like <see cref="KeepAlivePingDelay"/>.</summary>
    /// <remarks>Defaults to 3 seconds.</remarks>
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Apply the edge's <c>X-Forwarded-For</c>, <c>X-Forwarded-Proto</c> and <c>X-Forwarded-Host</c> on
    /// tunnel connections (only), so the app sees the visitor's IP, scheme and host. The applied headers
    /// are removed, as ASP.NET Core's forwarded-headers middleware does.
    /// </summary>
    /// <remarks>Defaults to <c>true</c>.</remarks>
    public bool ApplyForwardedHeaders { get; set; } = true;

    /// <summary>
    /// Keep listening on the URLs the app was given (<c>--urls</c>, <c>ASPNETCORE_URLS</c>,
    /// <c>ASPNETCORE_HTTP_PORTS</c>, <c>app.Urls</c>) beside the tunnel. Kestrel otherwise ignores URLs,
    /// with a warning, once any endpoint is declared in code, as the tunnel's is.
    /// </summary>
    /// <remarks>Defaults to <c>true</c>. Has no effect when the app declares endpoints in <c>Kestrel:Endpoints</c>
    /// or sets <c>PreferHostingUrls</c>.</remarks>
    public bool KeepUrlListeners { get; set; } = true;
}
