namespace Tunnel.Protocol;

/// <summary>
/// Bounds both ends enforce on the registration exchange. Each figure says why it is what it is.
/// </summary>
public static class TunnelLimits
{
    /// <summary>
    /// Largest registration frame body in bytes. A request names at most
    /// <see cref="MaxHostnamesPerRegistration"/> names of at most 253 bytes, plus a few fields:
    /// 64 KiB leaves room and still stops a hostile peer from making us buffer megabytes.
    /// </summary>
    public const int MaxFrameBodyBytes = 64 * 1024;

    /// <summary>Most hostnames one registration may claim; more is a configuration mistake, not a use case.</summary>
    public const int MaxHostnamesPerRegistration = 100;

    /// <summary>Longest DNS name (RFC 1035: 255 octets on the wire, 253 characters as text).</summary>
    public const int MaxHostnameLength = 253;

    /// <summary>Longest string field (messages, ids, versions) in a registration document.</summary>
    public const int MaxFieldLength = 1024;

    /// <summary>
    /// How long the edge waits for a complete registration after the TLS handshake, and the origin
    /// for the reply. Ten seconds covers a slow, distant link many times over; a peer that sends
    /// nothing for that long holds a socket for nothing.
    /// </summary>
    public static readonly TimeSpan RegistrationTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a TLS handshake on the tunnel port may take. The same reasoning as
    /// <see cref="RegistrationTimeout"/>: generous for a real origin, short for a stalled socket.
    /// </summary>
    public static readonly TimeSpan TlsHandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the origin writes one byte on a tunnel's anchor stream. Once a second costs nothing
    /// and lets the edge notice a silent (black-holed) tunnel long before HTTP/2 PINGs time out.
    /// </summary>
    public static readonly TimeSpan AnchorHeartbeatInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the edge tolerates silence on an anchor stream before it stops sending new requests
    /// down that tunnel (until the heartbeat returns). Two and a half beats: one late beat is no alarm.
    /// </summary>
    public static readonly TimeSpan AnchorSilenceLimit = TimeSpan.FromMilliseconds(2500);

    /// <summary>
    /// How long the origin tolerates silence on an anchor stream before it drops the tunnel and
    /// redials. Longer than <see cref="AnchorSilenceLimit"/>: stopping new requests is cheap and
    /// undone by the next beat, dropping a connection is not, and a long pause of either process
    /// must not cost a healthy tunnel. Five beats still replaces a black-holed tunnel in about 6 s.
    /// </summary>
    public static readonly TimeSpan AnchorDeadLimit = TimeSpan.FromSeconds(5);
}
