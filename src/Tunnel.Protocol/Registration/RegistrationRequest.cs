namespace Tunnel.Protocol.Registration;

/// <summary>
/// What an origin sends, once, after the TLS handshake and before any HTTP/2 byte.
/// </summary>
public sealed record RegistrationRequest
{
    /// <summary>The protocol version the origin speaks; <see cref="TunnelProtocol.Version"/>.</summary>
    public int Version { get; init; } = TunnelProtocol.Version;

    /// <summary>
    /// Identifies one running origin process (one replica). All connections of that process share it,
    /// so the edge can tell replicas apart.
    /// </summary>
    public string ConnectorId { get; init; } = "";

    /// <summary>Which of the origin's connection slots this connection fills (0-based).</summary>
    public int ConnectionIndex { get; init; }

    /// <summary>The hostnames whose requests the origin asks to receive on this connection.</summary>
    public IReadOnlyList<string> Hostnames { get; init; } = [];

    /// <summary>
    /// The hostnames whose visitor connections the origin asks to receive whole on this connection, each
    /// with its mode; empty for an origin that takes requests only (and from origins older than the field).
    /// </summary>
    public IReadOnlyList<ConnectionRoute> Connections { get; init; } = [];

    /// <summary>A free-form client name and version, for the edge's logs.</summary>
    public string ClientVersion { get; init; } = "";

    /// <summary>How many attempts this slot made since its last registered connection; 0 on a first try.</summary>
    public int PreviousAttempts { get; init; }
}
