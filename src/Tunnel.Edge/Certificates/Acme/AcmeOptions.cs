namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// Certificates for the visitor HTTPS port obtained from an ACME CA (RFC 8555), section <c>Edge:Acme</c>:
/// a configured list of names and, optionally, names that registered routes cover, issued the first time a
/// visitor asks for them. Off until <see cref="DirectoryUrl"/> is set.
/// </summary>
public sealed class AcmeOptions
{
    /// <summary>Let's Encrypt's staging directory: untrusted certificates, generous rate limits. Try it first.</summary>
    public const string LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory";

    /// <summary>
    /// The ACME directory URL of the CA (<see cref="LetsEncryptStaging"/>, then
    /// <c>https://acme-v02.api.letsencrypt.org/directory</c>). Setting it turns ACME on.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: no ACME.</remarks>
    public string? DirectoryUrl { get; set; }

    /// <summary>
    /// PEM file of the CA certificates that the ACME directory's own HTTPS certificate must chain to, for a
    /// private or test CA (Pebble). Validation stays on; only the roots it chains to change.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: the system's trusted roots.</remarks>
    public string? DirectoryCertificateAuthority { get; set; }

    /// <summary>
    /// Where the account key, the account URL and the issued certificates and keys are kept (files
    /// owner-only, written atomically). <c>tunnel-edge serve --dir D</c> sets <c>D/acme</c>.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>, which is an error when <see cref="DirectoryUrl"/> is set and no <c>--dir</c> is given.</remarks>
    public string? StoragePath { get; set; }

    /// <summary>Contact addresses for the account (<c>mailto:ops@example.com</c>); the CA mails expiry and policy notices there.</summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> Contacts { get; set; } = [];

    /// <summary>
    /// Whether the operator agrees to the CA's terms of service (the directory's <c>meta.termsOfService</c>);
    /// public CAs refuse an account without it.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool AcceptTermsOfService { get; set; }

    /// <summary>The key id of the External Account Binding, for a CA whose directory says <c>externalAccountRequired</c>.</summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public string? ExternalAccountKeyId { get; set; }

    /// <summary>
    /// The External Account Binding's HMAC key, base64url as the CA hands it out. A secret: give it through
    /// the environment (<c>TUNNEL_EDGE_Edge__Acme__ExternalAccountHmacKey</c>), never on a command line.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public string? ExternalAccountHmacKey { get; set; }

    /// <summary>
    /// The certificates to obtain and keep renewed, one entry per certificate; an entry may list several
    /// names separated by commas (<c>example.com,www.example.com</c>). A wildcard (<c>*.example.com</c>)
    /// can only be validated by DNS-01, which needs a DNS publisher (RFC 2136).
    /// </summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> Names { get; set; } = [];

    /// <summary>
    /// Challenge types to use, in order of preference, among what the CA offers: <c>http-01</c> (the visitor
    /// HTTP port must be reachable on port 80 from the CA), <c>tls-alpn-01</c> (the visitor HTTPS port on
    /// 443), <c>dns-01</c> (a DNS publisher). A wildcard always uses <c>dns-01</c>.
    /// </summary>
    /// <remarks>Defaults to <c>http-01</c>, <c>tls-alpn-01</c>.</remarks>
    public List<string> Challenges { get; set; } = [];

    /// <summary>
    /// Whether a name that no certificate covers, but a registered route does, gets a certificate the first
    /// time a visitor asks for it by SNI. Bounded by <see cref="OnDemandAllowedNames"/> and <see cref="OnDemandOrdersPerHour"/>;
    /// a name no route covers never gets one.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool OnDemand { get; set; }

    /// <summary>
    /// Patterns (exact names or <c>*.example.com</c>, which covers one label) a name must match to be issued
    /// on demand, besides being covered by a route. Empty allows every name a route covers.
    /// </summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> OnDemandAllowedNames { get; set; } = [];

    /// <summary>
    /// The most on-demand orders per rolling hour; past it a new name gets the fallback certificate until the
    /// hour has room again. Protects the CA's rate limits (Let's Encrypt: 300 new orders per 3 hours).
    /// </summary>
    /// <remarks>Defaults to 20.</remarks>
    public int OnDemandOrdersPerHour { get; set; } = 20;

    /// <summary>
    /// How long the visitor handshake that started an on-demand order waits for the certificate before it
    /// gets the fallback certificate (as Caddy does, the first visitor waits rather than sees a certificate
    /// error). Zero never waits. It must stay below <c>Edge:Limits:TlsHandshakeTimeout</c> (10 s), which would
    /// end the handshake first.
    /// </summary>
    /// <remarks>Defaults to 8 seconds (Let's Encrypt usually issues in 2 to 5).</remarks>
    public TimeSpan OnDemandHandshakeWait { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// The fraction of a certificate's lifetime after which it is renewed, when the CA offers no renewal
    /// information (RFC 9773); a random jitter of up to a tenth of the lifetime brings it earlier.
    /// </summary>
    /// <remarks>Defaults to 2/3.</remarks>
    public double RenewAfterLifetimeFraction { get; set; } = 2.0 / 3;

    /// <summary>The wait after a failed order before the next; doubled after each failure up to <see cref="MaxRetryDelay"/>.</summary>
    /// <remarks>Defaults to 1 minute.</remarks>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The longest wait between failed orders.</summary>
    /// <remarks>Defaults to 1 hour.</remarks>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long one order may take, polls included, before it counts as failed.</summary>
    /// <remarks>Defaults to 2 minutes.</remarks>
    public TimeSpan OrderTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long to wait after a DNS-01 TXT record is written (RFC 2136, to the zone's primary) before asking the
    /// CA to look it up, so the zone's secondaries have it too: the CA asks any of the zone's authoritative
    /// servers. Zero when the primary is the only one (or secondaries get NOTIFY and transfer at once).
    /// </summary>
    /// <remarks>Defaults to 30 seconds (certbot's RFC 2136 plugin waits 60).</remarks>
    public TimeSpan DnsPropagationDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// In a cluster (<c>Edge:Cluster</c>): a secret file, the same on every edge (mode 0600, at least 32 bytes,
    /// e.g. <c>openssl rand -base64 48</c>), whose content seals the private keys of the certificates the edges
    /// share through etcd (AES-256-GCM with a key derived by HKDF-SHA256). Anyone who can read etcd but not
    /// this file learns the certificates, never their keys. Required when ACME runs in a cluster.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>.</remarks>
    public string? ClusterKeyPath { get; set; }

    /// <summary>
    /// In a cluster: how long the edge that answers a challenge waits after publishing the answer through etcd
    /// before it asks the CA to validate, so that every edge (which learns it from its watch, usually within
    /// milliseconds) answers the validator too, whichever edge the name's DNS sends it to.
    /// </summary>
    /// <remarks>Defaults to 1 second.</remarks>
    public TimeSpan ClusterAnswerPropagation { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The DNS-01 publisher when none is registered as a service (<see cref="IDnsChallengeRecords"/>): set by
    /// the edge's own wiring or by a test; not a configuration value.
    /// </summary>
    internal IDnsChallengeRecords? DnsChallengeRecords { get; set; }

    /// <summary>Whether ACME is on.</summary>
    internal bool IsEnabled => !string.IsNullOrWhiteSpace(DirectoryUrl);
}
