namespace Tunnel.Transport;

/// <summary>
/// The tunnel's state, read-only, for an app to show (inject it) and for the health check.
/// </summary>
public interface ITunnelStatus
{
    /// <summary>How many connections the tunnel keeps (<see cref="TunnelOptions.HaConnections"/>); 0 before it starts.</summary>
    int DesiredConnections { get; }

    /// <summary>How many slots hold a registered connection now.</summary>
    int RegisteredConnections { get; }

    /// <summary>Each slot's state, by index.</summary>
    IReadOnlyList<TunnelSlotStatus> Slots { get; }

    /// <summary>The most recent failure (dial failed, refused, dropped), or <c>null</c>.</summary>
    TunnelConnectionEvent? LastError { get; }

    /// <summary>The most recent events, oldest first (at most 100).</summary>
    IReadOnlyList<TunnelConnectionEvent> RecentEvents { get; }

    /// <summary>The origin credential in use and any problem with it; <c>null</c> before the tunnel starts.</summary>
    TunnelCredentialStatus? Credential { get; }

    /// <summary>
    /// Visitor connections carried whole (the <c>ListenTunnel</c> routes: HTTP or TLS passthrough, TCP)
    /// that Kestrel is serving now; each is one stream on a tunnel connection.
    /// </summary>
    int OpenVisitorConnections => 0;

    /// <summary>
    /// Whether the app's readiness checks (<see cref="TunnelOptions.ReadinessTag"/>) let the edges send this
    /// replica requests; <c>false</c> while one reports Unhealthy.
    /// </summary>
    bool IsReady => true;
}

/// <summary>The origin credential in use, and what went wrong with it lately.</summary>
/// <param name="CredentialId">The certificate's serial number, upper-case hex (the id the edge lists and revokes).</param>
/// <param name="Source">Where it was loaded from: the credential or certificate file, or <c>Tunnel:Certificate</c>.</param>
/// <param name="Subject">The certificate's subject.</param>
/// <param name="NotAfter">When the certificate expires.</param>
/// <param name="LoadedAt">When it was loaded.</param>
public sealed record TunnelCredentialStatus(string CredentialId, string Source, string Subject, DateTimeOffset NotAfter, DateTimeOffset LoadedAt)
{
    /// <summary>
    /// Why the last change to the credential files could not be used (the credential above stays in
    /// use), or <c>null</c> when the files as they are now were loaded.
    /// </summary>
    public string? ReloadProblem { get; init; }

    /// <summary>
    /// Set when the certificate expires within <see cref="TunnelOptions.CertificateExpiryWarning"/> or has
    /// expired; <c>null</c> otherwise.
    /// </summary>
    public string? ExpiryProblem { get; init; }

    /// <summary>The problems above in one sentence, or <c>null</c> when there is none.</summary>
    public string? Problem => (ReloadProblem, ExpiryProblem) switch
    {
        (null, null) => null,
        ({ } reload, null) => reload,
        (null, { } expiry) => expiry,
        ({ } reload, { } expiry) => expiry + " " + reload,
    };
}

/// <summary>One connection slot's state.</summary>
/// <param name="ConnectionIndex">The slot (0-based).</param>
/// <param name="IsRegistered">Whether it holds a registered connection.</param>
/// <param name="EdgeName">The edge it is registered with, or <c>null</c>.</param>
/// <param name="EdgeRegion">That edge's region, or <c>null</c>.</param>
/// <param name="EdgeAddress">That edge's address, or <c>null</c>.</param>
/// <param name="TunnelConnectionId">The edge's id for the connection, or <c>null</c>.</param>
/// <param name="Since">When the slot entered this state.</param>
/// <param name="LastError">The slot's last failure since it was last registered, or <c>null</c>.</param>
public sealed record TunnelSlotStatus(
    int ConnectionIndex,
    bool IsRegistered,
    string? EdgeName,
    string? EdgeRegion,
    string? EdgeAddress,
    string? TunnelConnectionId,
    DateTimeOffset Since,
    TunnelConnectionEvent? LastError)
{
    /// <summary>The credential the slot's connection was dialed with (certificate serial, upper-case hex), or <c>null</c>.</summary>
    public string? CredentialId { get; init; }
}
