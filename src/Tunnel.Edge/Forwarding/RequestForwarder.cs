using System.Buffers;
using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Tunnel.Edge.Access;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.Edge.Tunnels;
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

    /// <summary>Handles one visitor request (terminal middleware).</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var edgeRequest = EdgeRequestFeature.For(context);
        var requestId = edgeRequest.RequestId;
        var host = context.Request.Host.Host;
        if (string.IsNullOrEmpty(host))
        {
            EdgeLog.RequestFailed(_logger, requestId, "(none)", 400, "no Host");
            await ErrorPages.WriteAsync(context, StatusCodes.Status400BadRequest, "Bad Request", "The request has no Host header, so the edge cannot tell which site it is for.", "(none)", requestId).ConfigureAwait(false);
            return;
        }

        var webSocket = WebSocketUpgrade.Detect(context, out var upgradeError);
        if (upgradeError is not null)
        {
            EdgeLog.RequestFailed(_logger, requestId, host, 400, upgradeError);
            await ErrorPages.WriteAsync(context, StatusCodes.Status400BadRequest, "Bad Request", upgradeError, host, requestId).ConfigureAwait(false);
            return;
        }

        if (webSocket is null && IsGrpc(context.Request))
        {
            // A streaming call may sit idle between messages for as long as the app likes; Kestrel's
            // minimum request body rate would cut it after its grace period. gRPC servers lift it for the
            // same reason. The origin keeps its own limits.
            context.Features.Get<IHttpMinRequestBodyDataRateFeature>()?.MinDataRate = null;
        }

        var requestBodyStarted = new StrongBox();
        byte[]? replayableBody;
        try
        {
            replayableBody = webSocket is null ? await ReadReplayableBodyAsync(context).ConfigureAwait(false) : null;
        }
        catch (BadHttpRequestException ex)
        {
            EdgeLog.RequestFailed(_logger, requestId, host, ex.StatusCode, ex.Message);
            await ErrorPages.WriteAsync(context, ex.StatusCode, ErrorPages.TitleFor(ex.StatusCode), ex.Message, host, requestId).ConfigureAwait(false);
            return;
        }
        catch (EndOfStreamException) when (!context.RequestAborted.IsCancellationRequested)
        {
            EdgeLog.RequestFailed(_logger, requestId, host, 400, "body shorter than its Content-Length");
            await ErrorPages.WriteAsync(context, StatusCodes.Status400BadRequest, "Bad Request", "The request body ended before its declared Content-Length.", host, requestId).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        TunnelConnection? failed = null;
        List<TunnelConnection>? skipped = null; // Made on the first skip: most requests take the first pick.
        var sawFull = false;
        for (var attempt = 1; ; attempt++)
        {
            var connection = _routes.Pick(host, skipped);
            if (connection is null && sawFull)
            {
                EdgeLog.RequestOverloaded(_logger, requestId, host, skipped?.Count ?? 0, "tunnel connection");
                UpstreamErrors.Report(context, UpstreamErrors.Refused);
                await ErrorPages.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, ErrorPages.TitleFor(StatusCodes.Status503ServiceUnavailable),
                    $"Every tunnel connection for {host} is as busy as it may be. Try again shortly.", host, requestId, EdgeAccessMiddleware.OverloadRetryAfter).ConfigureAwait(false);
                return;
            }

            if (connection is null && failed is null && await TryForwardToPeerAsync(context, host, edgeRequest, requestBodyStarted, replayableBody, webSocket).ConfigureAwait(false))
            {
                return;
            }

            if (connection is null)
            {
                var detail = failed is null
                    ? $"No origin is connected for {host}. If you run this site, check that its tunnel is up."
                    : $"The tunnel connection for {host} failed and no other is connected.";
                EdgeLog.RequestFailed(_logger, requestId, host, 502, failed is null ? "no tunnel" : "no other tunnel");
                UpstreamErrors.Report(context, failed is null ? UpstreamErrors.NoTunnel : UpstreamErrors.ConnectionLost);
                await ErrorPages.WriteAsync(context, StatusCodes.Status502BadGateway, "Bad Gateway", detail, host, requestId).ConfigureAwait(false);
                return;
            }

            using var deadline = new ResponseHeadersDeadline(edgeRequest.Policy.ResponseHeadersTimeout, context.RequestAborted);
            using var request = CreateTunnelRequest(context, requestBodyStarted, replayableBody, deadline, webSocket);
            if (!connection.TryRequestStarted(edgeRequest.Policy.MaxConcurrentRequestsPerConnection))
            {
                // Full (another request took its last place since it was picked): try the others; this
                // is not a failed attempt.
                (skipped ??= []).Add(connection);
                sawFull = true;
                attempt--;
                continue;
            }

            try
            {
                HttpResponseMessage response;
                try
                {
                    if (request.Content is not StreamingRequestContent)
                    {
                        deadline.Start();
                    }

                    response = await connection.Invoker.SendAsync(request, deadline.Token).ConfigureAwait(false);
                    deadline.HeadersReceived();
                }
                catch (HttpRequestException ex) when (Tunnels.Http2.Http2Errors.IsNoStreamFree(ex))
                {
                    await RefuseNoStreamFreeAsync(context, requestId, host).ConfigureAwait(false);
                    return;
                }
                catch (HttpRequestException ex) when (!context.RequestAborted.IsCancellationRequested && (IsNotProcessed(ex) || IsRepeatable(context.Request.Method, ex, connection)) && (replayableBody is not null || !requestBodyStarted.Value) && attempt < MaxAttempts)
                {
                    // The origin never saw this request, or it is idempotent and the tunnel under it was
                    // lost before any answer: the visitor need not see the failure. A stream the origin
                    // refused (at its stream limit) leaves the connection healthy: it is only skipped.
                    if (Tunnels.Http2.Http2Errors.IsRefusedStream(ex))
                    {
                        // With no other connection left, the visitor is told the site is busy (503).
                        sawFull = true;
                    }
                    else
                    {
                        connection.MarkDraining();
                        failed = connection;
                    }

                    (skipped ??= []).Add(connection);
                    EdgeLog.RequestRetried(_logger, requestId, host, ex.Message);
                    continue;
                }
                catch (OperationCanceledException) when (deadline.Expired)
                {
                    EdgeLog.ResponseHeadersTimedOut(_logger, requestId, host, deadline.Timeout.TotalSeconds);
                    UpstreamErrors.Report(context, UpstreamErrors.Timeout);
                    await ErrorPages.WriteAsync(context, StatusCodes.Status504GatewayTimeout, ErrorPages.TitleFor(StatusCodes.Status504GatewayTimeout),
                        $"The origin for {host} did not begin to answer within {deadline.Timeout.TotalSeconds:0.###} s.", host, requestId).ConfigureAwait(false);
                    return;
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    return;
                }
                catch (HttpRequestException ex) when (FindVisitorError(ex) is { } visitorError)
                {
                    // The visitor's own request body was at fault (too large, malformed, cut short).
                    EdgeLog.RequestFailed(_logger, requestId, host, visitorError.StatusCode, visitorError.Message);
                    await ErrorPages.WriteAsync(context, visitorError.StatusCode, ErrorPages.TitleFor(visitorError.StatusCode), visitorError.Message, host, requestId).ConfigureAwait(false);
                    return;
                }
                catch (HttpRequestException ex)
                {
                    EdgeLog.RequestFailed(_logger, requestId, host, 502, Describe(ex));
                    UpstreamErrors.Report(context, UpstreamErrors.Classify(ex));
                    await ErrorPages.WriteAsync(context, StatusCodes.Status502BadGateway, "Bad Gateway", $"The connection to the origin for {host} failed before it answered.", host, requestId).ConfigureAwait(false);
                    return;
                }

                using (response)
                {
                    // RFC 8441: 200 is the only success; the HTTP client opens the stream both ways only then.
                    if (webSocket is not null && response.StatusCode == HttpStatusCode.OK)
                    {
                        await TunnelWebSocketAsync(context, webSocket, response, requestId, host).ConfigureAwait(false);
                    }
                    else
                    {
                        // A refused upgrade (403, 404, ...) is an ordinary response for the visitor.
                        await CopyResponseAsync(context, response, requestId, host).ConfigureAwait(false);
                    }
                }

                return;
            }
            finally
            {
                connection.RequestFinished();
            }
        }
    }

    /// <summary>
    /// Every stream the origin allows stayed busy for the whole wait: the site is saturated, and the
    /// visitor is told so (503, Retry-After) rather than kept until the response-headers timeout.
    /// </summary>
    private Task RefuseNoStreamFreeAsync(HttpContext context, string requestId, string host)
    {
        var waited = _options.Limits.StreamWaitTimeout;
        EdgeLog.StreamWaitTimedOut(_logger, requestId, host, waited.TotalSeconds);
        UpstreamErrors.Report(context, UpstreamErrors.Refused);
        return ErrorPages.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, ErrorPages.TitleFor(StatusCodes.Status503ServiceUnavailable),
            $"Every tunnel stream for {host} stayed busy for {waited.TotalSeconds:0.###} s. Try again shortly.", host, requestId, EdgeAccessMiddleware.OverloadRetryAfter);
    }

    private static string Describe(Exception ex)
    {
        var message = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            message += " -> " + inner.Message;
        }

        return message;
    }

    private static BadHttpRequestException? FindVisitorError(Exception ex)
    {
        for (Exception? current = ex; current is not null; current = current.InnerException)
        {
            if (current is BadHttpRequestException bad)
            {
                return bad;
            }
        }

        return null;
    }

    private static bool IsNotProcessed(HttpRequestException ex) =>
        ex.HttpRequestError == HttpRequestError.ConnectionError;

    /// <summary>
    /// An idempotent request (RFC 9110 section 9.2.2) whose tunnel connection was lost before the response
    /// headers came may be sent again, as any HTTP client may: the origin may have seen it, but seeing it
    /// twice has the effect of once. Lost means the connection broke under it (reset, ended) or the edge
    /// has given it up (silent, draining, closed: a black-holed tunnel fails its requests with a PING
    /// timeout). A stream the origin itself reset, or an answer over the edge's limits, on a connection
    /// still in use is the origin's answer, not a lost tunnel, and is not repeated.
    /// </summary>
    private static bool IsRepeatable(string method, HttpRequestException ex, TunnelConnection connection)
    {
        if (!(HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method)
            || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method)))
        {
            return false;
        }

        if (FindVisitorError(ex) is not null)
        {
            return false;
        }

        if (!connection.IsUsable)
        {
            return true;
        }

        if (ex.HttpRequestError is not (HttpRequestError.ResponseEnded or HttpRequestError.Unknown))
        {
            return false;
        }

        for (Exception? current = ex; current is not null; current = current.InnerException)
        {
            if (current is HttpProtocolException)
            {
                return false;
            }
        }

        return true;
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

    internal static HttpRequestMessage CreateRequest(HttpContext context, StrongBox bodyStarted, byte[]? replayableBody, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
    {
        var source = context.Request;
        var request = new HttpRequestMessage(MethodOf(source, webSocket), new Uri(TunnelConnection.RequestUriPrefix + TargetOf(context), UriKind.Absolute))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        SetContent(request, context, bodyStarted, replayableBody, deadline, webSocket);
        var connectionTokens = GetConnectionTokens(source.Headers);
        foreach (var (name, values) in source.Headers)
        {
            if (!IsPassedOn(name, connectionTokens, webSocket))
            {
                continue;
            }

            // One value is the common case: added as a string, without boxing the values to enumerate them.
            var added = values.Count == 1
                ? request.Headers.TryAddWithoutValidation(name, values[0])
                : request.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
            if (!added && request.Content is not null)
            {
                _ = values.Count == 1
                    ? request.Content.Headers.TryAddWithoutValidation(name, values[0])
                    : request.Content.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
            }
        }

        // HTTP/2 :authority is the visitor's Host.
        request.Headers.Host = source.Host.Value;
        AddEdgeFields(context, request);
        return request;
    }

    /// <summary>
    /// The same request as <see cref="CreateRequest"/> builds, for a tunnel connection: its fields are
    /// written from the visitor's headers straight into the HPACK block, and the response's come back
    /// as a list (no URI, no header collections filled and read back).
    /// </summary>
    internal static HttpRequestMessage CreateTunnelRequest(HttpContext context, StrongBox bodyStarted, byte[]? replayableBody, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
    {
        var request = new TunnelRequestMessage(MethodOf(context.Request, webSocket), context, TargetOf(context), webSocket);
        SetContent(request, context, bodyStarted, replayableBody, deadline, webSocket);
        return request;
    }

    private static HttpMethod MethodOf(HttpRequest source, WebSocketUpgrade? webSocket) =>
        // Either WebSocket handshake becomes an RFC 8441 extended CONNECT, which Kestrel on the origin
        // hands to the app's WebSocket middleware like any HTTP/2 WebSocket.
        webSocket is null ? HttpMethod.Parse(source.Method) : HttpMethod.Connect;

    private static string TargetOf(HttpContext context)
    {
        var source = context.Request;
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(target) || target[0] != '/')
        {
            target = source.PathBase.Add(source.Path).ToUriComponent() + source.QueryString.ToUriComponent();
        }

        return target.Length == 0 ? "/" : target;
    }

    private static void SetContent(HttpRequestMessage request, HttpContext context, StrongBox bodyStarted, byte[]? replayableBody, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
    {
        var source = context.Request;
        var bodyDetection = context.Features.Get<IHttpRequestBodyDetectionFeature>();
        if (webSocket is not null)
        {
            // No content: the HTTP client then hands back the response stream as a duplex stream,
            // the same way ClientWebSocket uses it.
            request.Headers.Protocol = webSocket.Protocol;
        }
        else if (replayableBody is not null)
        {
            // Sent as read; an empty body with Content-Length: 0 stays a declared empty body.
            request.Content = new ByteArrayContent(replayableBody);
            request.Content.Headers.ContentLength = replayableBody.Length;
        }
        else if (bodyDetection?.CanHaveBody ?? (source.ContentLength > 0))
        {
            request.Content = new StreamingRequestContent(source.Body, source.ContentLength, bodyStarted, context.RequestAborted, deadline);
        }
    }

    /// <summary>Whether a visitor's request header goes on to the origin.</summary>
    private static bool IsPassedOn(string name, HashSet<string>? connectionTokens, WebSocketUpgrade? webSocket) =>
        !(name.Length == 0 || name[0] == ':' || HopByHopHeaders.Contains(name) || IsForwardingClaim(name)
            || (connectionTokens is not null && connectionTokens.Contains(name))
            || (webSocket is not null && WebSocketOnlyHttp11Headers.Contains(name)));

    /// <summary>
    /// Whether a header claims what only the edge may tell the origin (who the visitor is, how it came,
    /// the tunnel's own fields), in any spelling: CGI-style servers and many frameworks read
    /// <c>X_Forwarded_For</c> as <c>X-Forwarded-For</c>, so underscores count as dashes.
    /// </summary>
    private static bool IsForwardingClaim(string name)
    {
        if (name.Contains('_', StringComparison.Ordinal))
        {
            name = name.Replace('_', '-');
        }

        return StrippedRequestHeaders.Contains(name)
            || name.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("X-Tunnel-", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The fields the edge adds to every request, into either carrier a request is built in (header
    /// collections for the inter-edge hop, the HPACK block for a tunnel): TE: trailers when the visitor
    /// accepts them, the forwarded headers that say who asked and how, and the edge span's trace context.
    /// </summary>
    private static void AddEdgeFields(HttpContext context, object carrier)
    {
        var source = context.Request;
        if (source.Headers.TE.ToString().Contains("trailers", StringComparison.OrdinalIgnoreCase))
        {
            AddField(carrier, "TE", "trailers");
        }

        AddField(carrier, TunnelHeaderNames.ForwardedFor, context.Connection.RemoteIpAddress?.ToString());
        AddField(carrier, TunnelHeaderNames.ForwardedProto, source.Scheme);
        AddField(carrier, TunnelHeaderNames.ForwardedHost, source.Host.Value);
        if (System.Diagnostics.Activity.Current is { } span)
        {
            System.Diagnostics.DistributedContextPropagator.Current.Inject(span, carrier, static (carrier, name, value) => AddField(carrier!, name, value));
        }
    }

    private static void AddField(object carrier, string name, string? value)
    {
        if (carrier is Tunnels.Http2.HpackEncoder encoder)
        {
            encoder.WriteLiteral(name, value ?? "");
        }
        else
        {
            ((HttpRequestMessage)carrier).Headers.TryAddWithoutValidation(name, value ?? "");
        }
    }

    /// <summary>A visitor's request as a tunnel stream: its fields are written from the visitor's headers as the block is encoded.</summary>
    private sealed class TunnelRequestMessage(HttpMethod method, HttpContext context, string target, WebSocketUpgrade? webSocket)
        : Tunnels.Http2.Http2FieldsRequest(method)
    {
        public override string PathAndQuery => target;

        public override string Authority => context.Request.Host.Value ?? "";

        public override string? Protocol => webSocket?.Protocol;

        public override void WriteFields(Tunnels.Http2.HpackEncoder encoder)
        {
            var headers = context.Request.Headers;
            var connectionTokens = GetConnectionTokens(headers);
            foreach (var (name, values) in headers)
            {
                if (!IsPassedOn(name, connectionTokens, webSocket))
                {
                    continue;
                }

                // A field once per value: HTTP/2 lets a field repeat, and the origin joins them as it
                // would joined values (cookies with "; ", RFC 9113 section 8.2.3).
                foreach (var value in values)
                {
                    encoder.WriteLiteral(name, value ?? "");
                }
            }

            AddEdgeFields(context, encoder);
        }
    }

    private async Task CopyResponseAsync(HttpContext context, HttpResponseMessage upstream, string requestId, string host)
    {
        var response = context.Response;
        response.StatusCode = (int)upstream.StatusCode;
        CopyResponseHeaders(upstream, response.Headers, withContentHeaders: true);

        // Stream as the origin writes: server-sent events and long polls must not wait in a buffer.
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            Stream body;
            try
            {
                body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return;
            }

            // The response is not started here: it starts with the first body bytes, or with a flush
            // once a read has to wait. A response the origin ended with its headers (a gRPC
            // trailers-only status, 204, 304, HEAD, an empty body) is then never started by the
            // forwarder, and Kestrel sends it as one HEADERS frame with END_STREAM, as the origin did.
            // Started early, it went out as HEADERS and an empty DATA frame with END_STREAM, and gRPC
            // clients read the status fields as initial metadata of a call that ended without a status.
            await using (body.ConfigureAwait(false))
            {
                // Bytes [start, end) of the buffer are read and not yet sent. What the tunnel already
                // delivered is gathered into one write; whatever is held is sent before waiting for more,
                // so a stream still reaches the visitor as the origin writes it.
                var headersFlushed = false;
                int start = 0, end = 0;
                while (true)
                {
                    if (start == end)
                    {
                        start = end = 0;
                    }
                    else if (end == buffer.Length)
                    {
                        await WriteBodyAsync(response, buffer.AsMemory(start, end - start), context.RequestAborted).ConfigureAwait(false);
                        start = end = 0;
                    }

                    int read;
                    try
                    {
                        var reading = body.ReadAsync(buffer.AsMemory(end), context.RequestAborted);
                        if (!reading.IsCompleted && end > start)
                        {
                            // The read fills the buffer after end; what is held before it goes out now.
                            headersFlushed = true;
                            await WriteBodyAsync(response, buffer.AsMemory(start, end - start), context.RequestAborted).ConfigureAwait(false);
                            start = end;
                        }
                        else if (!headersFlushed && !reading.IsCompleted)
                        {
                            // Starting the response only queues its headers. The origin answered but has
                            // no body yet (a full-duplex call waiting for the visitor's next message, a
                            // long poll): send the headers now, or a visitor that waits for them before
                            // sending more deadlocks with an origin that waits for the visitor.
                            headersFlushed = true;
                            await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                        }

                        read = await reading.ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is HttpRequestException or IOException && !context.RequestAborted.IsCancellationRequested)
                    {
                        EdgeLog.ResponseAborted(_logger, requestId, host, ex.Message);
                        UpstreamErrors.Report(context, UpstreamErrors.ConnectionLost);
                        context.Abort();
                        return;
                    }

                    if (read == 0)
                    {
                        break;
                    }

                    end += read;
                }

                if (end > start)
                {
                    await WriteBodyAsync(response, buffer.AsMemory(start, end - start), context.RequestAborted).ConfigureAwait(false);
                }
            }

            if (Tunnels.Http2.Http2ResponseFields.HasTrailers(upstream) && response.SupportsTrailers())
            {
                foreach (var (name, values) in upstream.TrailingHeaders)
                {
                    response.AppendTrailer(name, new StringValues(values.ToArray()));
                }
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The visitor left; disposing the upstream response resets the stream to the origin.
        }
        catch (IOException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async ValueTask WriteBodyAsync(HttpResponse response, ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Completes the visitor's handshake once the origin accepted the extended CONNECT, then passes
    /// bytes both ways until either side ends. WebSocket frames pass as bytes, so close codes and
    /// negotiated extensions reach the other end as sent.
    /// </summary>
    private async Task TunnelWebSocketAsync(HttpContext context, WebSocketUpgrade webSocket, HttpResponseMessage upstream, string requestId, string host)
    {
        // The origin's choices (subprotocol, extensions, cookies) reach the visitor; frames pass as bytes,
        // so whatever the two ends negotiated works end to end.
        CopyResponseHeaders(upstream, context.Response.Headers, withContentHeaders: false);
        Stream origin;
        Stream visitor;
        try
        {
            origin = await upstream.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            visitor = await webSocket.AcceptAsync(context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        EdgeLog.WebSocketOpened(_logger, requestId, host, webSocket.IsExtendedConnect ? "HTTP/2" : "HTTP/1.1");
        var started = Stopwatch.GetTimestamp();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        using var idle = new IdleWatch(_options.Limits.WebSocketIdleTimeout, _time, stop);
        var up = PumpAsync(visitor, origin, idle, stop.Token);
        var down = PumpAsync(origin, visitor, idle, stop.Token);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);

        // One side ended: the other has nothing left to talk to. An HTTP/2 stream on the tunnel cannot
        // be half-closed here, so the origin's stream is reset when the response is disposed; a broken
        // origin breaks the visitor's connection rather than ending it cleanly.
        await stop.CancelAsync().ConfigureAwait(false);
        var (fromVisitor, visitorError) = await up.ConfigureAwait(false);
        var (toVisitor, originError) = await down.ConfigureAwait(false);
        string outcome;
        if (idle.Expired)
        {
            // Both sides close: the origin's stream is reset with the response, the visitor's connection here.
            outcome = "idle";
            EdgeLog.WebSocketIdleClosed(_logger, requestId, host, idle.Timeout.TotalSeconds);
            _metrics?.VisitorRefused(VisitorRefusals.WebSocketIdle);
            context.Abort();
        }
        else if (first == down)
        {
            outcome = originError is null ? "origin closed" : "origin broke off: " + Describe(originError);
            if (originError is not null && !context.RequestAborted.IsCancellationRequested)
            {
                context.Abort();
            }
        }
        else
        {
            outcome = visitorError is null ? "visitor closed" : "visitor broke off: " + Describe(visitorError);
        }

        EdgeLog.WebSocketClosed(_logger, requestId, host, outcome, Stopwatch.GetElapsedTime(started).TotalSeconds, fromVisitor, toVisitor);
    }

    /// <summary>Copies bytes until the source ends, each read written and flushed at once.</summary>
    private static async Task<(long Bytes, Exception? Error)> PumpAsync(Stream source, Stream destination, IdleWatch idle, CancellationToken cancellationToken)
    {
        // Yield first so both directions start before either runs synchronously to its first wait.
        await Task.Yield();
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        long total = 0;
        try
        {
            while (true)
            {
                var read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return (total, null);
                }

                idle.Touch();
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
                total += read;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
        {
            return (total, cancellationToken.IsCancellationRequested ? null : ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool IsGrpc(HttpRequest request) =>
        request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Passes the origin's response headers on, less hop-by-hop ones and those its Connection header
    /// names. A tunnel's response brings its fields as a list: the first of a name replaces what the
    /// edge may have set, a repeated one (Set-Cookie) is added to it.
    /// </summary>
    private static void CopyResponseHeaders(HttpResponseMessage upstream, IHeaderDictionary to, bool withContentHeaders)
    {
        if (Tunnels.Http2.Http2ResponseFields.Of(upstream) is { } fields)
        {
            CopyResponseFields(fields, to);
            return;
        }

        var connectionTokens = GetConnectionTokens(upstream.Headers);
        CopyHeaders(upstream.Headers, to, connectionTokens);
        if (withContentHeaders)
        {
            CopyHeaders(upstream.Content.Headers, to, connectionTokens);
        }
    }

    /// <summary>A tunnel response's fields, in order, to the visitor's response headers (see <see cref="CopyResponseHeaders"/>).</summary>
    internal static void CopyResponseFields(IReadOnlyList<KeyValuePair<string, string>> fields, IHeaderDictionary to)
    {
        HashSet<string>? tokens = null;
        foreach (var (name, value) in fields)
        {
            if (string.Equals(name, "Connection", StringComparison.OrdinalIgnoreCase))
            {
                tokens ??= new(StringComparer.OrdinalIgnoreCase);
                tokens.UnionWith(ParseTokens(value));
            }
        }

        for (var i = 0; i < fields.Count; i++)
        {
            var (name, value) = fields[i];
            if (HopByHopHeaders.Contains(name) || (tokens is not null && tokens.Contains(name)))
            {
                continue;
            }

            if (IsRepeated(fields, i))
            {
                to.Append(name, value);
            }
            else
            {
                to[name] = value;
            }
        }
    }

    private static bool IsRepeated(IReadOnlyList<KeyValuePair<string, string>> fields, int index)
    {
        var name = fields[index].Key;
        for (var i = 0; i < index; i++)
        {
            if (string.Equals(fields[i].Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    internal static void CopyHeaders(System.Net.Http.Headers.HttpHeaders from, IHeaderDictionary to, HashSet<string>? connectionTokens)
    {
        foreach (var (name, values) in from.NonValidated)
        {
            if (HopByHopHeaders.Contains(name) || (connectionTokens is not null && connectionTokens.Contains(name)))
            {
                continue;
            }

            to[name] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues(values.ToArray());
        }
    }

    private static HashSet<string>? GetConnectionTokens(IHeaderDictionary headers)
    {
        var connection = headers.Connection;
        if (connection.Count == 0)
        {
            return null;
        }

        // What browsers send: names nothing beyond the hop-by-hop fields already left out.
        if (connection.Count == 1 && connection[0] is { } only
            && (only.Equals("keep-alive", StringComparison.OrdinalIgnoreCase) || only.Equals("close", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        return ParseTokens(connection.ToString());
    }

    private static HashSet<string>? GetConnectionTokens(System.Net.Http.Headers.HttpResponseHeaders headers) =>
        headers.NonValidated.TryGetValues("Connection", out var values) ? ParseTokens(values.ToString()) : null;

    private static HashSet<string> ParseTokens(string value) =>
        new(value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.OrdinalIgnoreCase);

    /// <summary>A mutable flag shared with the request content.</summary>
    internal sealed class StrongBox
    {
        public volatile bool Value;
    }
}
