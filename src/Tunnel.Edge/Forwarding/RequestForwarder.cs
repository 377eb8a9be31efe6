using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.Protocol;

namespace Tunnel.Edge.Forwarding;

/// <summary>
/// Sends each visitor request down a tunnel connection for its host and streams the response back:
/// method, target, headers less hop-by-hop ones, bodies both ways without buffering them whole,
/// trailers, and cancellation both ways.
/// </summary>
internal sealed partial class RequestForwarder
{
    // Most body chunks fit: big enough for full-speed downloads, small enough per request in flight.
    private const int CopyBufferSize = 64 * 1024;

    // A request that fails before the origin saw it is tried on other connections, at most this often.
    private const int MaxAttempts = 3;

    // Bodies up to this size with a declared length are read first so they can be sent again when a
    // tunnel refuses the request (the origin is draining); larger ones stream and are never replayed.
    // 64 KiB covers form posts and API calls while bounding memory per request in flight.
    private const int ReplayableBodyLimit = 64 * 1024;

    private static readonly HashSet<string> HopByHopHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "TE", "Trailer",
        "Host", "Expect", "HTTP2-Settings", "Alt-Svc",
    };

    private static readonly HashSet<string> StrippedRequestHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        TunnelHeaderNames.ForwardedFor, TunnelHeaderNames.ForwardedProto, TunnelHeaderNames.ForwardedHost,
        TunnelHeaderNames.Forwarded, TunnelHeaderNames.Probe, TunnelHeaderNames.RequestId,
        "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Real-IP",

        // Other proxies' and CDNs' ways of saying who the visitor is, which frameworks and apps trust
        // as readily: only the edge says that, in X-Forwarded-*. (Any X-Forwarded-* and X-Tunnel-*
        // name goes too, and each of these spelled with underscores: see IsForwardingClaim.)
        "X-Forwarded", "Forwarded-For", "Forwarded-Proto", "Forwarded-Host",
        "True-Client-IP", "CF-Connecting-IP", "CF-Connecting-IPv6", "CF-Visitor", "Fastly-Client-IP", "Akamai-Client-IP",
        "X-Client-IP", "Client-IP", "X-Cluster-Client-IP", "X-ProxyUser-Ip", "X-Remote-IP", "X-Remote-Addr", "X-Originating-IP",
        "X-Original-For", "X-Original-Host", "X-Original-Proto", "X-Original-URL", "X-Original-URI", "X-Rewrite-URL",
        "X-Host", "X-HTTP-Host-Override", "X-Url-Scheme", "Front-End-Https",

        // Service token credentials are for the edge's sign-in only (Access.SignIn), on every route.
        Access.SignIn.SignInServices.ClientIdHeader, Access.SignIn.SignInServices.ClientSecretHeader,

        // Meaningful only between edges, on the inter-edge port.
        Cluster.PeerRequests.HopHeader,

        // The edge's own span carries the trace on; the HTTP client injects its context.
        "traceparent", "tracestate",

        // The streamed content carries the length itself; a second copy would be a malformed request.
        "Content-Length",
    };

    // RFC 8441 section 5: HTTP/2 WebSockets have no key; the edge answers an HTTP/1.1 key itself.
    private static readonly HashSet<string> WebSocketOnlyHttp11Headers = new(StringComparer.OrdinalIgnoreCase)
    {
        "Sec-WebSocket-Key", "Sec-WebSocket-Accept",
    };

    private readonly RouteTable _routes;
    private readonly ILogger _logger;
    private readonly EdgeOptions _options;
    private readonly TimeProvider _time;
    private readonly EdgeMetrics? _metrics;

    /// <summary>Creates the forwarder; with <paramref name="peers"/> (a cluster) a host with no local tunnel is sent to a peer edge.</summary>
    public RequestForwarder(RouteTable routes, ILogger<RequestForwarder> logger, EdgeOptions? options = null, Cluster.PeerSet? peers = null, Cluster.ClusterMetrics? clusterMetrics = null,
        TimeProvider? time = null, EdgeMetrics? metrics = null)
    {
        _routes = routes;
        _logger = logger;
        _options = options ?? new EdgeOptions();
        _peers = peers;
        _clusterMetrics = clusterMetrics;
        _time = time ?? TimeProvider.System;
        _metrics = metrics;
    }

    /// <summary>
    /// Handles one visitor request (terminal middleware):
    /// <code>
    /// visitor ──► check Host and upgrade ──► read a small body whole ──► route: tunnels for the host
    ///                                                                   (or, with none, peer edges)
    ///         ◄── response or WebSocket ◄── attempt loop (ForwardAsync) ◄──┘
    /// </code>
    /// Every failure on the way ends in <see cref="FailAsync"/>.
    /// </summary>
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var host = context.Request.Host.Host;
        if (string.IsNullOrEmpty(host))
        {
            await FailAsync(context, _logger, NoHostName, new(ForwarderError.NoHost)).ConfigureAwait(false);
            return;
        }

        var webSocket = WebSocketUpgrade.Detect(context, out var upgradeError);
        if (upgradeError is not null)
        {
            await FailAsync(context, _logger, host, ForwarderFailure.OfVisitor(StatusCodes.Status400BadRequest, upgradeError)).ConfigureAwait(false);
            return;
        }

        if (webSocket is null && IsGrpc(context.Request))
        {
            // A streaming call may sit idle between messages for as long as the app likes; Kestrel's
            // minimum request body rate would cut it after its grace period. gRPC servers lift it for the
            // same reason. The origin keeps its own limits.
            context.Features.Get<IHttpMinRequestBodyDataRateFeature>()?.MinDataRate = null;
        }

        var (bodyRead, replayableBody) = webSocket is null ? await TryReadReplayableBodyAsync(context, host).ConfigureAwait(false) : (true, null);
        if (!bodyRead)
        {
            return;
        }

        var body = new VisitorBody(replayableBody);
        var tunnels = new TunnelRoute(this, context, host);
        IForwardRoute route = tunnels.IsEmpty && CanAskPeers(context) ? new PeerRoute(this, context, host) : tunnels;
        await ForwardAsync(context, host, route, body, webSocket).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads a body up to <see cref="ReplayableBodyLimit"/> with a declared length whole, so it can be
    /// sent again; <c>false</c> when the request ended here (the visitor's error answered, or the visitor left).
    /// </summary>
    private async Task<(bool Read, byte[]? Body)> TryReadReplayableBodyAsync(HttpContext context, string host)
    {
        try
        {
            return (true, await ReadReplayableBodyAsync(context).ConfigureAwait(false));
        }
        catch (BadHttpRequestException ex)
        {
            await FailAsync(context, _logger, host, ForwarderFailure.OfVisitor(ex.StatusCode, ex.Message)).ConfigureAwait(false);
        }
        catch (EndOfStreamException) when (!context.RequestAborted.IsCancellationRequested)
        {
            await FailAsync(context, _logger, host, new(ForwarderError.VisitorBodyShort)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
        }

        return (false, null);
    }

    private static async Task<byte[]?> ReadReplayableBodyAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength is not { } length || length > ReplayableBodyLimit)
        {
            return null;
        }

        var body = new byte[length];
        await request.Body.ReadExactlyAsync(body, context.RequestAborted).ConfigureAwait(false);
        return body;
    }

    private static bool IsGrpc(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    /// <summary>A mutable flag shared with the request content.</summary>
    internal sealed class StrongBox
    {
        public volatile bool Value;
    }
}
