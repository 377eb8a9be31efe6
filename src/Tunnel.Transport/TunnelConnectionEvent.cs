using Tunnel.Edge.Dial.Dialing;

namespace Tunnel.Transport;

/// <summary>What happened to a tunnel connection slot.</summary>
public enum TunnelConnectionEventKind
{
    /// <summary>The slot registered a connection with an edge.</summary>
    Registered,

    /// <summary>A dial failed before registration (discovery, TCP, TLS or the exchange itself).</summary>
    DialFailed,

    /// <summary>The edge refused the registration; <see cref="TunnelConnectionEvent.ErrorType"/> is its code.</summary>
    Rejected,

    /// <summary>A registered connection closed.</summary>
    Disconnected,

    /// <summary>The edge asked the connection to move (it is draining); a replacement is being dialed.</summary>
    Moving,

    /// <summary>The plugin dropped a connection whose edge fell silent (black-holed path).</summary>
    Dropped,

    /// <summary>
    /// The credential was renewed: a replacement is being dialed with the new certificate, and this
    /// connection keeps serving until the replacement is registered.
    /// </summary>
    Renewing,

    /// <summary>
    /// The connection moves to an edge that held fewer connections (a restarted edge, say): its
    /// replacement is already registered there, and this connection closes once its open requests
    /// finish. <see cref="TunnelConnectionEvent.Reason"/> names the edge it moves to.
    /// </summary>
    Rebalancing,

    /// <summary>
    /// Moving the connection to a less used edge failed; the connection stays where it is.
    /// <see cref="TunnelConnectionEvent.EdgeAddress"/> is the edge that could not be reached.
    /// </summary>
    RebalanceFailed,
}

/// <summary>
/// One event of the tunnel's single stream of connection events, which the logs, the metrics and the
/// health check all read.
/// </summary>
/// <param name="Kind">What happened.</param>
/// <param name="ConnectionIndex">The slot (0-based).</param>
/// <param name="Timestamp">When it happened.</param>
public sealed record TunnelConnectionEvent(TunnelConnectionEventKind Kind, int ConnectionIndex, DateTimeOffset Timestamp)
{
    /// <summary>The edge address dialed (<c>host:port</c>), when known.</summary>
    public string? EdgeAddress { get; init; }

    /// <summary>
    /// The credential the connection was dialed with (the certificate's serial number, upper-case hex),
    /// when registered.
    /// </summary>
    public string? CredentialId { get; init; }

    /// <summary>The edge's name from its registration reply, when registered.</summary>
    public string? EdgeName { get; init; }

    /// <summary>The edge's region from its registration reply, when registered.</summary>
    public string? EdgeRegion { get; init; }

    /// <summary>The id the edge gave the connection, when registered.</summary>
    public string? TunnelConnectionId { get; init; }

    /// <summary>For failures: the phase (<c>Discovery</c>, <c>Tcp</c>, <c>Tls</c>, <c>Registration</c>).</summary>
    public string? Phase { get; init; }

    /// <summary>For failures: a short stable name (<c>connection_refused</c>, a rejection code, ...).</summary>
    public string? ErrorType { get; init; }

    /// <summary>For failures and closes: the human-readable reason.</summary>
    public string? Reason { get; init; }

    /// <summary>For refusals: whether the edge said a retry may succeed.</summary>
    public bool? Retryable { get; init; }

    /// <summary>For failures: how long the slot waits before the next attempt.</summary>
    public TimeSpan? RetryDelay { get; init; }

    /// <summary>For registrations: how long each dial phase took.</summary>
    public DialTimings? Timings { get; init; }

    /// <summary>For disconnects: how long the connection was up.</summary>
    public TimeSpan? Uptime { get; init; }

    /// <summary>Whether this event is a failure (dial failed, refused or dropped).</summary>
    public bool IsFailure => Kind is TunnelConnectionEventKind.DialFailed or TunnelConnectionEventKind.Rejected or TunnelConnectionEventKind.Dropped or TunnelConnectionEventKind.RebalanceFailed;
}
