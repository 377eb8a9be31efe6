namespace Tunnel.Transport;

/// <summary>
/// How a tunnel endpoint declared with <c>ListenTunnel</c> takes its visitors: whole connections that
/// Kestrel serves on that endpoint as if it had accepted them from a socket.
/// </summary>
public enum TunnelMode
{
    /// <summary>
    /// The edge's visitor HTTP port routes a cleartext connection (HTTP/1.1 or h2c) by its first request's
    /// host and relays its bytes. Kestrel parses every request; a later request on the connection for
    /// another host gets 421 Misdirected Request.
    /// </summary>
    HttpPassthrough,

    /// <summary>
    /// The edge's visitor HTTPS port routes a TLS connection by the ClientHello's server name and relays
    /// its bytes: the handshake ends in the app (configure it with <c>ListenOptions.UseHttps</c>), so
    /// the edge never holds the key nor sees plaintext.
    /// </summary>
    TlsPassthrough,

    /// <summary>
    /// Every connection to the edge port its operator configured for the hostname is relayed; serve it
    /// with any connection handler (<c>ListenOptions.UseConnectionHandler</c>).
    /// </summary>
    Tcp,
}
