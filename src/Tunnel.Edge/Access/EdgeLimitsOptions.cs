namespace Tunnel.Edge.Access;

/// <summary>
/// Limits on visitors' requests, for every hostname (section <c>Edge:Limits</c>). A hostname's entry
/// under <c>Edge:Hosts</c> may override the per-hostname ones.
/// </summary>
public sealed class EdgeLimitsOptions
{
    /// <summary>Kestrel's own default: enough for large cookies, small enough to bound memory per connection.</summary>
    public const int DefaultMaxRequestHeadersTotalSize = 32 * 1024;

    /// <summary>Kestrel's own default: browsers send about 20; a hundred leaves room for API clients.</summary>
    public const int DefaultMaxRequestHeaderCount = 100;

    /// <summary>
    /// Cloudflare's proxy read timeout (its 524) and HttpClient's default timeout: long enough for slow
    /// reports and exports, short enough that a hung origin does not hold visitors and streams forever.
    /// </summary>
    public static readonly TimeSpan DefaultResponseHeadersTimeout = TimeSpan.FromSeconds(100);

    /// <summary>Kestrel's own default: a visitor slower than a 2400 baud modem is holding a connection, not using it.</summary>
    public const double DefaultMinDataRate = 240;

    /// <summary>Kestrel's own default: room for TCP slow start and a mobile network's first hiccup.</summary>
    public static readonly TimeSpan DefaultMinDataRateGracePeriod = TimeSpan.FromSeconds(5);

    /// <summary>Kestrel's own default: time for a slow mobile link to send a request's headers.</summary>
    public static readonly TimeSpan DefaultRequestHeadersTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Kestrel's own default: long enough for a slow mobile link to finish a TLS handshake.</summary>
    public static readonly TimeSpan DefaultTlsHandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Open visitor connections, both ports together. An idle connection costs the edge a few KiB (tens
    /// with TLS), so the cap holds the edge under about a GiB with room left in the default descriptor
    /// limit; the admin and tunnel ports are not counted, so a flood of visitors cannot lock them out.
    /// </summary>
    public const int DefaultMaxConcurrentConnections = 20_000;

    /// <summary>
    /// Open connections per visitor address (per IPv6 /64). A browser opens at most 6 HTTP/1.1
    /// connections per site and one HTTP/2 connection; the rest is room for many visitors behind one NAT.
    /// </summary>
    public const int DefaultMaxConnectionsPerVisitor = 256;

    /// <summary>
    /// Requests in flight per visitor address for one hostname: about a tenth of the tunnel streams a
    /// site has with the connector's defaults (4 connections of 90 streams), so one visitor cannot hold
    /// them all with WebSockets, event streams or slow uploads. Bursts above it wait, they are not refused.
    /// </summary>
    public const int DefaultMaxConcurrentRequestsPerVisitor = 32;

    /// <summary>
    /// How long a request may wait for a free place (a tunnel stream, or its visitor's share) before the
    /// edge answers <c>503</c>: requests usually free a place within milliseconds, so a wait this long
    /// means the site is saturated, and the visitor is better told so than kept for the 100 s timeout.
    /// </summary>
    public static readonly TimeSpan DefaultStreamWaitTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Silence, both ways, after which a WebSocket is closed: longer than the keep-alive pings of
    /// ASP.NET Core (2 min) and browsers' libraries, so only abandoned sockets reach it.
    /// </summary>
    public static readonly TimeSpan DefaultWebSocketIdleTimeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// nginx's <c>stream</c> proxy closes after 10 minutes without a byte; an hour lets an ssh or database
    /// session sit idle through a meeting while a connection nobody uses still ends.
    /// </summary>
    public static readonly TimeSpan DefaultConnectionIdleTimeout = TimeSpan.FromHours(1);

    /// <summary>
    /// What the edge grants each tunnel stream before the origin must wait for a WINDOW_UPDATE: 1 MiB
    /// keeps a stream at full speed up to about 80 Mbit/s on a 100 ms round trip (window ÷ RTT).
    /// </summary>
    public const int DefaultTunnelStreamWindowSize = 1024 * 1024;

    /// <summary>The same for all streams of one tunnel connection together: 16 streams' worth.</summary>
    public const int DefaultTunnelConnectionWindowSize = 16 * 1024 * 1024;

    /// <summary>Most bytes of request headers (and request line) a visitor may send; more gets <c>431</c>.</summary>
    /// <remarks>Defaults to 32 KiB (Kestrel's default). At most 1 MiB (Kestrel's request buffer).</remarks>
    public int MaxRequestHeadersTotalSize { get; set; } = DefaultMaxRequestHeadersTotalSize;

    /// <summary>Most request headers a visitor may send; more gets <c>431</c>.</summary>
    /// <remarks>Defaults to 100 (Kestrel's default).</remarks>
    public int MaxRequestHeaderCount { get; set; } = DefaultMaxRequestHeaderCount;

    /// <summary>Largest request body, in bytes, the edge forwards for a hostname; a larger one gets <c>413</c>.</summary>
    /// <remarks>
    /// Defaults to <c>null</c>, unlimited at the edge: the edge streams bodies without buffering them, and
    /// the origin's Kestrel still applies its own limit (30 MB unless the app changed it). A body that
    /// declares a larger <c>Content-Length</c> is refused before the origin sees the request; a chunked
    /// body is cut when it passes the limit, after the origin has begun to receive it.
    /// </remarks>
    public long? MaxRequestBodySize { get; set; }

    /// <summary>How long the edge waits for the origin's response headers once it has sent the whole request; then <c>504</c>.</summary>
    /// <remarks>Defaults to 100 seconds (as Cloudflare's proxy). Response bodies, event streams included, are not limited.</remarks>
    public TimeSpan ResponseHeadersTimeout { get; set; } = DefaultResponseHeadersTimeout;

    /// <summary>Most requests in flight at once for one hostname; more get <c>503</c> with <c>Retry-After</c>.</summary>
    /// <remarks>Defaults to <c>null</c>, no cap: the origin's HTTP/2 stream limit already queues excess requests at the edge.</remarks>
    public int? MaxConcurrentRequests { get; set; }

    /// <summary>
    /// Most requests in flight at once on one tunnel connection. A request for a hostname whose every
    /// connection is at the cap gets <c>503</c> with <c>Retry-After</c> instead of waiting for a stream.
    /// </summary>
    /// <remarks>
    /// Defaults to <c>null</c>, no cap: requests beyond the origin's <c>MaxStreamsPerConnection</c> (100 in
    /// Kestrel) wait in the edge's HTTP/2 client until a stream frees up.
    /// </remarks>
    public int? MaxConcurrentRequestsPerConnection { get; set; }

    /// <summary>Slowest a visitor may send a request body, in bytes per second, after the grace period; slower is cut off.</summary>
    /// <remarks>Defaults to 240 bytes/s (Kestrel's default). <c>null</c> disables the check.</remarks>
    public double? MinRequestBodyDataRate { get; set; } = DefaultMinDataRate;

    /// <summary>Slowest a visitor may read a response, in bytes per second, after the grace period; slower is cut off.</summary>
    /// <remarks>Defaults to 240 bytes/s (Kestrel's default). <c>null</c> disables the check.</remarks>
    public double? MinResponseDataRate { get; set; } = DefaultMinDataRate;

    /// <summary>How long a visitor may be slower than the minimum data rates before the check applies.</summary>
    /// <remarks>Defaults to 5 seconds (Kestrel's default). Must be more than 1 second (Kestrel's heartbeat).</remarks>
    public TimeSpan MinDataRateGracePeriod { get; set; } = DefaultMinDataRateGracePeriod;

    /// <summary>
    /// How long a visitor has to send its request headers (Kestrel's <c>Limits.RequestHeadersTimeout</c>),
    /// and how long a new connection on the HTTP port, or a new TLS connection on the HTTPS port, may stay
    /// silent (or send only part of the HTTP/2 preface) before the edge closes it.
    /// </summary>
    /// <remarks>Defaults to 30 seconds (Kestrel's default).</remarks>
    public TimeSpan RequestHeadersTimeout { get; set; } = DefaultRequestHeadersTimeout;

    /// <summary>How long a TLS handshake on the visitor HTTPS port may take; a client that sends no ClientHello is closed after it.</summary>
    /// <remarks>Defaults to 10 seconds (Kestrel's default).</remarks>
    public TimeSpan TlsHandshakeTimeout { get; set; } = DefaultTlsHandshakeTimeout;

    /// <summary>
    /// Most visitor connections open at once on the visitor ports (HTTP and HTTPS together; the role of
    /// Kestrel's <c>Limits.MaxConcurrentConnections</c>, for visitors only). Further connections are closed
    /// at once, with a log line (event <c>VisitorConnectionRefused</c>, at most one every 10 s) and the
    /// metric <c>tunnel.edge.visitor.refused</c>.
    /// </summary>
    /// <remarks>Defaults to 20000. <c>null</c> removes the cap.</remarks>
    public int? MaxConcurrentConnections { get; set; } = DefaultMaxConcurrentConnections;

    /// <summary>Most visitor connections open at once from one visitor address (one IPv6 /64); further ones are closed at once.</summary>
    /// <remarks>Defaults to 256. <c>null</c> removes the cap.</remarks>
    public int? MaxConnectionsPerVisitor { get; set; } = DefaultMaxConnectionsPerVisitor;

    /// <summary>
    /// Most requests in flight at once from one visitor address (one IPv6 /64) to one hostname, WebSockets
    /// and event streams included for their whole life. A request over it waits up to
    /// <see cref="StreamWaitTimeout"/> for one of that visitor's requests to end, then gets <c>503</c> with
    /// <c>Retry-After</c>. An <c>Edge:Hosts</c> entry may override it.
    /// </summary>
    /// <remarks>Defaults to 32. <c>null</c> removes the cap.</remarks>
    public int? MaxConcurrentRequestsPerVisitor { get; set; } = DefaultMaxConcurrentRequestsPerVisitor;

    /// <summary>
    /// How long a request may wait for a free stream on its host's tunnel connections (and for a place
    /// under <see cref="MaxConcurrentRequestsPerVisitor"/>) before it gets <c>503</c> with <c>Retry-After</c>.
    /// </summary>
    /// <remarks>Defaults to 10 seconds.</remarks>
    public TimeSpan StreamWaitTimeout { get; set; } = DefaultStreamWaitTimeout;

    /// <summary>
    /// How long a WebSocket tunnelled through the edge may pass no byte either way before the edge closes
    /// both sides (it logs <c>WebSocketClosed</c> with the outcome <c>idle</c>).
    /// </summary>
    /// <remarks>Defaults to 5 minutes. <see cref="Timeout.InfiniteTimeSpan"/> disables it.</remarks>
    public TimeSpan WebSocketIdleTimeout { get; set; } = DefaultWebSocketIdleTimeout;

    /// <summary>
    /// How long a visitor connection carried whole (HTTP or TLS passthrough, a TCP route) may pass no byte
    /// either way before the edge closes it and its tunnel stream (it logs <c>ConnectionIdle</c>, and
    /// <c>tunnel.edge.route.connection.duration</c> records the outcome <c>idle</c>).
    /// </summary>
    /// <remarks>Defaults to 1 hour. <see cref="Timeout.InfiniteTimeSpan"/> disables it.</remarks>
    public TimeSpan ConnectionIdleTimeout { get; set; } = DefaultConnectionIdleTimeout;

    /// <summary>
    /// The HTTP/2 flow-control window the edge grants each stream on a tunnel connection, for what the
    /// origin sends: response bodies and the origin's side of carried connections. A stream moves at most
    /// this much per round trip between edge and origin, so raise it for bulk transfers over long links
    /// (window = rate × RTT: 8 MiB for 640 Mbit/s at 100 ms). Memory is taken only for bytes the visitor
    /// has not read yet. The other direction (uploads) is the origin's Kestrel's
    /// <c>Limits.Http2.InitialStreamWindowSize</c> and <c>InitialConnectionWindowSize</c>.
    /// </summary>
    /// <remarks>Defaults to 1 MiB. From 65,535 bytes to 2^31-1.</remarks>
    public int TunnelStreamWindowSize { get; set; } = DefaultTunnelStreamWindowSize;

    /// <summary>The flow-control window the edge grants a whole tunnel connection (all its streams together).</summary>
    /// <remarks>Defaults to 16 MiB. At least <see cref="TunnelStreamWindowSize"/>, at most 2^31-1.</remarks>
    public int TunnelConnectionWindowSize { get; set; } = DefaultTunnelConnectionWindowSize;
}
