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
}
