namespace Tunnel.Protocol.Registration;

/// <summary>
/// The reasons an edge refuses a registration. They are stable strings: the origin logs them,
/// counts them in metrics and shows them in its health check.
/// </summary>
public static class RejectionCodes
{
    /// <summary>The origin's certificate does not cover one of the hostnames it asked for. Not retryable.</summary>
    public const string HostnameNotAuthorized = "hostname_not_authorized";

    /// <summary>The registration document was malformed or broke a limit. Not retryable.</summary>
    public const string InvalidRegistration = "invalid_registration";

    /// <summary>The origin speaks a protocol version the edge does not. Not retryable.</summary>
    public const string UnsupportedVersion = "unsupported_version";

    /// <summary>The edge is shutting down and takes no new tunnels. Retryable at once on another edge.</summary>
    public const string EdgeDraining = "edge_draining";

    /// <summary>The edge has as many tunnel connections as it accepts. Retryable after the given delay.</summary>
    public const string Overloaded = "overloaded";

    /// <summary>The origin's credential was revoked. Not retryable.</summary>
    public const string CredentialRevoked = "credential_revoked";

    /// <summary>
    /// The origin's client certificate failed validation: expired, from another CA, not for client
    /// authentication, or missing. The message says which. Not retryable.
    /// </summary>
    public const string CertificateRefused = "certificate_refused";

    /// <summary>
    /// The origin's credential is over one of the edge's per-credential caps (tunnel connections per
    /// credential, hostnames per registration), so one tenant cannot take every tunnel place from the
    /// others. The message names the cap. Retryable after the given delay: places free up as the
    /// credential's other connections close.
    /// </summary>
    public const string CredentialLimit = "credential_limit";

    /// <summary>
    /// A hostname asked for is claimed exclusively by another credential (issued with
    /// <c>tunnel-edge issue --exclusive</c>); only credentials that claim it may register it. The
    /// message names the claiming credential. Not retryable.
    /// </summary>
    public const string HostnameClaimed = "hostname_claimed";

    /// <summary>The registration asks for a connection mode (passthrough, TCP) the edge does not allow for a hostname; not retryable.</summary>
    public const string ConnectionModeNotAllowed = "connection_mode_not_allowed";
}
