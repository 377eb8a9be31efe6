namespace Tunnel.Edge.Telemetry;

/// <summary>What happened to a tunnel connection.</summary>
internal enum EdgeConnectionEventKind
{
    /// <summary>An origin's registration was accepted.</summary>
    Registered,

    /// <summary>An origin's registration was refused.</summary>
    Refused,

    /// <summary>A registered tunnel connection closed.</summary>
    Closed,
}

/// <summary>One tunnel connection event, as the status page lists it.</summary>
/// <param name="Time">When it happened.</param>
/// <param name="Kind">What happened.</param>
/// <param name="Remote">The origin's address.</param>
/// <param name="ConnectionId">The connection's id; <c>null</c> for a refusal.</param>
/// <param name="ConnectorId">The origin replica; <c>null</c> when unknown.</param>
/// <param name="Hostnames">The hostnames registered, comma-separated; empty for a refusal.</param>
/// <param name="Reason">The rejection code for a refusal, else empty.</param>
/// <param name="Detail">The refusal's message, or the uptime of a closed connection.</param>
internal sealed record EdgeConnectionEvent(
    DateTimeOffset Time,
    EdgeConnectionEventKind Kind,
    string Remote,
    string? ConnectionId,
    string? ConnectorId,
    string Hostnames,
    string Reason,
    string Detail);
