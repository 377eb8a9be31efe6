namespace Tunnel.Protocol;

/// <summary>
/// The byte the origin writes on a tunnel's anchor stream, once per
/// <see cref="TunnelLimits.AnchorHeartbeatInterval"/> and again at once when the app's readiness changes.
/// Every byte is a heartbeat; its value also says whether the app is ready to take new requests on that
/// connection. An edge that predates the readiness values counts any byte as a heartbeat only, and an
/// origin that predates them always writes <see cref="Ready"/>, so neither end needs to negotiate it.
/// </summary>
public static class AnchorBeat
{
    /// <summary>The app takes new requests (the only value older origins write).</summary>
    public const byte Ready = 0;

    /// <summary>
    /// The app's readiness checks report Unhealthy: choose this connection for no new request until a
    /// <see cref="Ready"/> beat; requests already on it finish. A drain that can end.
    /// </summary>
    public const byte NotReady = 1;
}
