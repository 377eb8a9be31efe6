namespace Tunnel.Protocol;

/// <summary>
/// The constants both ends of a tunnel connection must agree on.
/// </summary>
public static class TunnelProtocol
{
    /// <summary>The ALPN protocol id of wire protocol v1. The edge refuses any other.</summary>
    public const string Alpn = "tunnel/1";

    /// <summary>The edge's default tunnel port, as Cloudflare's edge uses.</summary>
    public const int DefaultTunnelPort = 7844;

    /// <summary>The protocol version carried in every registration frame.</summary>
    public const int Version = 1;
}

/// <summary>
/// Header names the edge sets on every request it sends down a tunnel. The edge removes any
/// visitor-sent copy first, so on a tunnel connection these are trustworthy.
/// </summary>
public static class TunnelHeaderNames
{
    /// <summary>The visitor's IP address (one address, no port).</summary>
    public const string ForwardedFor = "X-Forwarded-For";

    /// <summary>The visitor's scheme, <c>http</c> or <c>https</c>.</summary>
    public const string ForwardedProto = "X-Forwarded-Proto";

    /// <summary>The Host the visitor asked for, with its port when it had one.</summary>
    public const string ForwardedHost = "X-Forwarded-Host";

    /// <summary>The standard <c>Forwarded</c> header (RFC 7239); the edge strips visitor-sent copies.</summary>
    public const string Forwarded = "Forwarded";

    /// <summary>An id the edge gives each visitor request; it appears in the edge's logs and error pages.</summary>
    public const string RequestId = "X-Tunnel-Request-Id";

    /// <summary>
    /// Marks the request the edge sends once on each new tunnel connection to open HTTP/2 on it (so
    /// keepalive PINGs run from the start). The plugin answers it before the app sees it with response
    /// headers and keeps the stream open as the tunnel's anchor: an open stream keeps the origin's
    /// server from closing an idle tunnel, and its end tells the edge the origin is draining. The edge
    /// strips visitor-sent copies.
    /// </summary>
    public const string Probe = "X-Tunnel-Probe";

    /// <summary>The path of the probe request.</summary>
    public const string ProbePath = "/.well-known/tunnel/probe";

    /// <summary>
    /// The signed assertion (a compact JWT, ES256) of the visitor the edge signed in for a route with an
    /// <c>Access</c> section; only the edge adds it, and it strips visitor-sent copies. Its key is
    /// <see cref="Registration.RegistrationAccepted.IdentityKey"/>.
    /// </summary>
    public const string Identity = "X-Tunnel-Identity";
}
