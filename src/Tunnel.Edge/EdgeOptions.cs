using Tunnel.Edge.Visitors;
using Tunnel.Protocol;

namespace Tunnel.Edge;

/// <summary>
/// Configures an edge. Bound from the <c>Edge</c> section of the configuration file given to
/// <c>tunnel-edge serve --config</c>, from <c>TUNNEL_EDGE_</c> environment variables, then from flags.
/// </summary>
public sealed class EdgeOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Edge";

    /// <summary>The edge's name, sent to origins and shown in their logs.</summary>
    /// <remarks>Defaults to the machine name.</remarks>
    public string Name { get; set; } = Environment.MachineName;

    /// <summary>The edge's region (data centre, zone), sent to origins so they spread over regions.</summary>
    /// <remarks>Defaults to empty.</remarks>
    public string Region { get; set; } = "";

    /// <summary>The IP address the tunnel port listens on.</summary>
    /// <remarks>Defaults to <c>0.0.0.0</c> (every IPv4 interface).</remarks>
    public string TunnelAddress { get; set; } = "0.0.0.0";

    /// <summary>The tunnel port origins dial.</summary>
    /// <remarks>Defaults to 7844. 0 picks a free port (tests).</remarks>
    public int TunnelPort { get; set; } = TunnelProtocol.DefaultTunnelPort;

    /// <summary>The IP address the visitor HTTP port listens on.</summary>
    /// <remarks>Defaults to <c>0.0.0.0</c>.</remarks>
    public string VisitorAddress { get; set; } = "0.0.0.0";

    /// <summary>The visitor HTTP port: HTTP/1.1 and HTTP/2 with prior knowledge (h2c), on one port.</summary>
    /// <remarks>Defaults to 8080. 0 picks a free port (tests).</remarks>
    public int VisitorHttpPort { get; set; } = 8080;

    /// <summary>PEM file with the CA certificate(s) whose origin certificates may register.</summary>
    /// <remarks>Required. <c>tunnel-edge init</c> writes <c>ca.pem</c>.</remarks>
    public string? CaCertificatePath { get; set; }

    /// <summary>PEM file with the edge's TLS server certificate for the tunnel port.</summary>
    /// <remarks>Required. <c>tunnel-edge init</c> writes <c>edge.pem</c>.</remarks>
    public string? ServerCertificatePath { get; set; }

    /// <summary>PEM file with the server certificate's private key.</summary>
    /// <remarks>Required. <c>tunnel-edge init</c> writes <c>edge.key</c>.</remarks>
    public string? ServerKeyPath { get; set; }

    /// <summary>
    /// The revocation list (<c>revoked.json</c>, written by <c>tunnel-edge revoke</c> and the admin API):
    /// credentials refused at registration, whose live connections are closed.
    /// </summary>
    /// <remarks>
    /// Defaults to <c>null</c>: nothing can be revoked. <c>serve --dir</c> sets it to the directory's
    /// <c>revoked.json</c>; a missing file is an empty list, a corrupt one stops the edge at start.
    /// </remarks>
    public string? RevocationListPath { get; set; }

    /// <summary>
    /// How often the edge looks at its server certificate, CA bundle and revocation list for changes.
    /// A revoked credential's connections close within this plus <see cref="RevokedConnectionGrace"/>.
    /// </summary>
    /// <remarks>Defaults to 1 second: a revocation must take effect within 5 s, and a look costs three file stats.</remarks>
    public TimeSpan CredentialCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a connection whose credential was revoked (or whose CA was retired) may finish the requests
    /// it has in flight; it takes no new ones from the moment the change is seen, then it is closed.
    /// </summary>
    /// <remarks>Defaults to 2 seconds, so with the 1 s check the connection is gone within 3 s of the revocation.</remarks>
    public TimeSpan RevokedConnectionGrace { get; set; } = TimeSpan.FromSeconds(2);

    // ---- Visitor limits and per-hostname access rules (validated by Access.HostPolicies) ----

    /// <summary>Limits on visitors' requests: header size and count, body size, timeouts, concurrency, data rates.</summary>
    /// <remarks>Section <c>Edge:Limits</c>; every property documents its default.</remarks>
    public Access.EdgeLimitsOptions Limits { get; set; } = new();

    /// <summary>
    /// Per-hostname rules (section <c>Edge:Hosts:{hostname}</c>): IP allow and deny lists, a rate limit per
    /// visitor IP, and overrides of <see cref="Limits"/>. Keys are exact names or <c>*.</c> wildcards.
    /// </summary>
    /// <remarks>Defaults to empty: every hostname gets <see cref="Limits"/> and no access rules.</remarks>
    public Dictionary<string, Access.EdgeHostOptions> Hosts { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    // ---- end of visitor limits ----

    /// <summary>
    /// How long the edge waits without frames from an origin before it sends an HTTP/2 PING on the
    /// tunnel. With <see cref="KeepAlivePingTimeout"/> it bounds how long a dead tunnel keeps traffic.
    /// </summary>
    /// <remarks>Defaults to 2 seconds: with the 3 s timeout a dead tunnel is dropped within about 6 s.</remarks>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long the edge waits for a PING's answer before it drops the tunnel connection.</summary>
    /// <remarks>Defaults to 3 seconds.</remarks>
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// On shutdown, how long the edge keeps serving through its tunnels after asking the origins to
    /// move, waiting for them to close their connections here once their replacements elsewhere are up.
    /// </summary>
    /// <remarks>Defaults to 10 seconds.</remarks>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a TLS handshake on the tunnel port may take.</summary>
    /// <remarks>Defaults to 10 seconds.</remarks>
    public TimeSpan TlsHandshakeTimeout { get; set; } = TunnelLimits.TlsHandshakeTimeout;

    /// <summary>
    /// Whether OpenSSL frees the record buffers of an idle tunnel connection, and of an idle visitor
    /// HTTPS connection, between records (<c>SSL_MODE_RELEASE_BUFFERS</c>), which saves 7-14 KiB per
    /// idle connection. Where it cannot be set (not Linux/OpenSSL, or a runtime that hides the handle)
    /// the edge logs why once and goes on.
    /// </summary>
    /// <remarks>Defaults to true.</remarks>
    public bool ReleaseIdleTlsBuffers { get; set; } = true;

    /// <summary>How long an origin may take to send its registration after the handshake.</summary>
    /// <remarks>Defaults to 10 seconds.</remarks>
    public TimeSpan RegistrationTimeout { get; set; } = TunnelLimits.RegistrationTimeout;

    /// <summary>Most tunnel connections the edge holds; further registrations are refused as overloaded.</summary>
    /// <remarks>Defaults to 10000.</remarks>
    public int MaxTunnelConnections { get; set; } = 10_000;

    /// <summary>
    /// Most tunnel-port connections the edge holds before they register (TLS handshake, then the
    /// registration frame). A connection over the cap is closed at once, before any TLS byte, and
    /// counted in <c>tunnel.edge.handshakes.refused</c>; an origin so refused redials with its backoff.
    /// </summary>
    /// <remarks>Defaults to 512: the listen backlog, many times the handshakes a second a reconnect storm of 10000 tunnels brings.</remarks>
    public int MaxTunnelHandshakes { get; set; } = 512;

    /// <summary>
    /// Most tunnel-port connections from one source address (an IPv6 /64 counts as one) the edge holds
    /// before they register, so one address that opens sockets and stalls cannot take the places of
    /// origins elsewhere.
    /// </summary>
    /// <remarks>Defaults to 64: sixteen origins of four connections starting at once behind one NAT.</remarks>
    public int MaxTunnelHandshakesPerAddress { get; set; } = 64;

    /// <summary>
    /// Most tunnel connections one credential (one origin certificate, however many replicas use it)
    /// holds on this edge, so one tenant cannot take every place of <see cref="MaxTunnelConnections"/>
    /// from the others; further registrations are refused as <c>credential_limit</c>.
    /// </summary>
    /// <remarks>Defaults to 100: 25 replicas of the plugin's 4 connections on one edge.</remarks>
    public int MaxTunnelConnectionsPerCredential { get; set; } = 100;

    /// <summary>
    /// Most hostnames one registration may name (each is a route the edge and the cluster's store keep);
    /// a registration naming more is refused as <c>credential_limit</c>. At most the protocol's own limit
    /// of <see cref="TunnelLimits.MaxHostnamesPerRegistration"/>.
    /// </summary>
    /// <remarks>Defaults to 20.</remarks>
    public int MaxHostnamesPerRegistration { get; set; } = 20;

    /// <summary>
    /// The credential registry (<c>credentials.json</c>) of the CA that issues origin credentials, read for
    /// the exclusive claims it records, so a claim holds on this edge before its credential first connects
    /// (after a restart too), and for the status page's overlap warnings. Re-read when it changes.
    /// </summary>
    /// <remarks>Defaults to none (<c>serve --dir</c>: the directory's <c>credentials.json</c>): claims are then learned from the credentials that connect.</remarks>
    public string? CredentialRegistryPath { get; set; }

    /// <summary>Routes that take visitors' whole connections: HTTP and TLS passthrough, TCP routes.</summary>
    public Visitors.Passthrough.ConnectionRouteOptions Connections { get; set; } = new();

    // ---- Visitor TLS (HTTPS port, certificates by SNI, HTTP to HTTPS redirect) ----

    /// <summary>
    /// The visitor HTTPS port: HTTP/1.1 and HTTP/2 chosen by ALPN, a certificate per hostname chosen by
    /// SNI from <see cref="Certificates"/> and <see cref="CertificateDirectory"/>.
    /// </summary>
    /// <remarks>
    /// Defaults to 8443. 0 picks a free port (tests); -1 disables the port. The port opens only when at
    /// least one certificate is configured, so an edge without certificates serves cleartext only.
    /// </remarks>
    public int VisitorHttpsPort { get; set; } = 8443;

    /// <summary>
    /// Certificate files for the HTTPS port. Each certificate serves the DNS names of its subject
    /// alternative name (exact names and <c>*.example.com</c> wildcards, one label, as in TLS). A visitor
    /// that sends no SNI, or a name no certificate covers, gets the first certificate. When two cover
    /// the same name, the first listed wins. Files are watched and reloaded when they change.
    /// </summary>
    /// <remarks>Defaults to none.</remarks>
    public List<VisitorCertificateFile> Certificates { get; set; } = [];

    /// <summary>
    /// A directory of certificates for the HTTPS port: every <c>NAME.pem</c> with a <c>NAME.key</c> beside
    /// it, in name order, after <see cref="Certificates"/>. Pairs added or removed later are picked up.
    /// </summary>
    /// <remarks>Defaults to none.</remarks>
    public string? CertificateDirectory { get; set; }

    /// <summary>
    /// How often the certificate files are checked for changes even when no file-system event came
    /// (a safety net for network file systems and missed events).
    /// </summary>
    /// <remarks>Defaults to 30 seconds.</remarks>
    public TimeSpan CertificateCheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Hostnames whose plain-HTTP requests are redirected (308) to HTTPS: exact names,
    /// <c>*.example.com</c> wildcards (one label), or <c>*</c> for every host.
    /// </summary>
    /// <remarks>Defaults to none: plain HTTP is served as it is.</remarks>
    public List<string> HttpsRedirectHosts { get; set; } = [];

    /// <summary>
    /// The port the redirect's <c>Location</c> names, when visitors reach the HTTPS port through a
    /// different public port (a port forward from 443, a load balancer).
    /// </summary>
    /// <remarks>Defaults to the HTTPS port the edge listens on. 443 is left out of the URL.</remarks>
    public int? HttpsRedirectPort { get; set; }

    // ---- Admin listener (status page and Prometheus metrics) ----

    /// <summary>The IP address the admin port listens on.</summary>
    /// <remarks>
    /// Defaults to <c>127.0.0.1</c>: loopback only, because the status page shows routes and the
    /// origins' addresses. Expose it to a metrics network deliberately, never to visitors.
    /// </remarks>
    public string AdminAddress { get; set; } = "127.0.0.1";

    /// <summary>The admin port: the status page at <c>/</c> and Prometheus metrics at <c>/metrics</c>.</summary>
    /// <remarks>Defaults to 9844. 0 picks a free port (tests); -1 disables the admin listener.</remarks>
    public int AdminPort { get; set; } = 9844;

    /// <summary>
    /// The file holding the admin API's bearer token (<c>tunnel-edge init</c> writes <c>admin.token</c>, mode 0600).
    /// The API (<c>/api/v1/</c>) answers 401 to a request without <c>Authorization: Bearer TOKEN</c>.
    /// </summary>
    /// <remarks>
    /// Defaults to <c>null</c>: the API answers 404 (the status page and <c>/metrics</c> still work).
    /// <c>serve --dir</c> sets it to the directory's <c>admin.token</c> when that file exists. An unreadable
    /// or corrupt token file stops the edge at start.
    /// </remarks>
    public string? AdminTokenPath { get; set; }

    /// <summary>
    /// The networks (CIDR) the admin API accepts requests from, whatever <see cref="AdminAddress"/> is;
    /// other addresses get 403 even with the token. The status page and <c>/metrics</c> are not limited by it.
    /// </summary>
    /// <remarks>Defaults to loopback only: <c>127.0.0.0/8</c> and <c>::1/128</c>.</remarks>
    public List<string> AdminAllowedNetworks { get; set; } = ["127.0.0.0/8", "::1/128"];

    /// <summary>
    /// Host names (without port) the admin port's status page and <c>/metrics</c> answer to, besides
    /// <c>localhost</c>, loopback addresses and the address a request arrived on. Any other Host gets 421:
    /// a browser tricked by DNS rebinding sends the attacker's name, which is not in this list.
    /// </summary>
    /// <remarks>Defaults to empty. Set it to the name Prometheus or operators use (<c>edge-1.internal</c>).</remarks>
    public List<string> AdminHosts { get; set; } = [];

    // ---- Cluster (routes shared through etcd, one hop between edges) ----

    /// <summary>Several edges as one network: the route store on etcd, the inter-edge port and its certificate.</summary>
    /// <remarks>Section <c>Edge:Cluster</c>. Defaults to no cluster: one edge, routes in memory.</remarks>
    public Cluster.ClusterOptions Cluster { get; set; } = new();

    // ---- DNS records for routes (RFC 2136 dynamic updates) ----

    /// <summary>The zones in which the edge publishes its routes' hostnames, signed with TSIG.</summary>
    /// <remarks>Section <c>Edge:Dns</c>. Defaults to no zone: the edge writes nothing to DNS.</remarks>
    public Dns.EdgeDnsOptions Dns { get; set; } = new();

    /// <summary>Certificates for the visitor HTTPS port from an ACME CA (Let's Encrypt): section <c>Edge:Acme</c>.</summary>
    /// <remarks>Defaults to off (no directory URL).</remarks>
    public Certificates.Acme.AcmeOptions Acme { get; set; } = new();

    // ---- OpenTelemetry export ----

    /// <summary>
    /// An OTLP/HTTP collector to push the edge's metrics (meter <c>Tunnel.Edge</c>) and spans
    /// (ActivitySource <c>Tunnel.Edge</c>) to, beside the Prometheus endpoint, e.g. <c>http://collector:4318</c>.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: the <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> environment variable, else no export.</remarks>
    public string? OtlpEndpoint { get; set; }

    /// <summary>How often metrics are pushed over OTLP.</summary>
    /// <remarks>Defaults to 15 seconds, a common scrape interval.</remarks>
    public TimeSpan OtlpExportInterval { get; set; } = TimeSpan.FromSeconds(15);
}
