using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
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
public sealed class RequestForwarder
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

        // The edge's own span carries the trace on; the HTTP client injects its context.
        "traceparent", "tracestate",

        // The streamed content carries the length itself; a second copy would be a malformed request.
        "Content-Length",
    };

    private readonly RouteTable _routes;
    private readonly ILogger _logger;
    private long _requestNumber;
    private readonly string _requestIdPrefix = Convert.ToHexString(BitConverter.GetBytes(Environment.TickCount64))[..8].ToLowerInvariant();

    /// <summary>Creates the forwarder.</summary>
    public RequestForwarder(RouteTable routes, ILogger<RequestForwarder> logger)
    {
        _routes = routes;
        _logger = logger;
    }

    /// <summary>Handles one visitor request (terminal middleware).</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var requestId = $"{_requestIdPrefix}-{Interlocked.Increment(ref _requestNumber):x}";
        var host = context.Request.Host.Host;
        if (string.IsNullOrEmpty(host))
        {
            EdgeLog.RequestFailed(_logger, requestId, "(none)", 400, "no Host");
            await ErrorPages.WriteAsync(context, StatusCodes.Status400BadRequest, "Bad Request", "The request has no Host header, so the edge cannot tell which site it is for.", "(none)", requestId).ConfigureAwait(false);
            return;
        }

        var requestBodyStarted = new StrongBox();
        byte[]? replayableBody;
        try
        {
            replayableBody = await ReadReplayableBodyAsync(context).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex)
        {
            EdgeLog.RequestFailed(_logger, requestId, host, ex.StatusCode, ex.Message);
            await ErrorPages.WriteAsync(context, ex.StatusCode, "Bad Request", ex.Message, host, requestId).ConfigureAwait(false);
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
        for (var attempt = 1; ; attempt++)
        {
            var connection = _routes.Pick(host, failed);
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

            using var request = CreateRequest(context, requestBodyStarted, replayableBody);
            connection.RequestStarted();
            try
            {
                HttpResponseMessage response;
                try
                {
                    response = await connection.Invoker.SendAsync(request, context.RequestAborted).ConfigureAwait(false);
                }
                catch (HttpRequestException ex) when (!context.RequestAborted.IsCancellationRequested && IsNotProcessed(ex) && (replayableBody is not null || !requestBodyStarted.Value) && attempt < MaxAttempts)
                {
                    // The origin never saw this request: the visitor need not see the failure.
                    connection.MarkDraining();
                    failed = connection;
                    EdgeLog.RequestRetried(_logger, requestId, host, ex.Message);
                    continue;
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    return;
                }
                catch (HttpRequestException ex) when (FindVisitorError(ex) is { } visitorError)
                {
                    // The visitor's own request body was at fault (too large, malformed, cut short).
                    EdgeLog.RequestFailed(_logger, requestId, host, visitorError.StatusCode, visitorError.Message);
                    await ErrorPages.WriteAsync(context, visitorError.StatusCode, "Bad Request", visitorError.Message, host, requestId).ConfigureAwait(false);
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
                    await CopyResponseAsync(context, response, requestId, host).ConfigureAwait(false);
                }

                return;
            }
            finally
            {
                connection.RequestFinished();
            }
        }
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

    private static HttpRequestMessage CreateRequest(HttpContext context, StrongBox bodyStarted, byte[]? replayableBody)
    {
        var source = context.Request;
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(target) || target[0] != '/')
        {
            target = source.PathBase.Add(source.Path).ToUriComponent() + source.QueryString.ToUriComponent();
        }

        if (target.Length == 0)
        {
            target = "/";
        }

        var request = new HttpRequestMessage(new HttpMethod(source.Method), new Uri(TunnelConnection.RequestUriPrefix + target, UriKind.Absolute))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        var bodyDetection = context.Features.Get<IHttpRequestBodyDetectionFeature>();
        if (replayableBody is not null)
        {
            // Sent as read; an empty body with Content-Length: 0 stays a declared empty body.
            request.Content = new ByteArrayContent(replayableBody);
            request.Content.Headers.ContentLength = replayableBody.Length;
        }
        else if (bodyDetection?.CanHaveBody ?? (source.ContentLength > 0))
        {
            request.Content = new StreamingRequestContent(source.Body, source.ContentLength, bodyStarted, context.RequestAborted);
        }

        var connectionTokens = GetConnectionTokens(source.Headers);
        foreach (var (name, values) in source.Headers)
        {
            if (name.Length == 0 || name[0] == ':' || HopByHopHeaders.Contains(name) || StrippedRequestHeaders.Contains(name)
                || (connectionTokens is not null && connectionTokens.Contains(name)))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!))
            {
                request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
            }
        }

        if (source.Headers.TE.ToString().Contains("trailers", StringComparison.OrdinalIgnoreCase))
        {
            request.Headers.TryAddWithoutValidation("TE", "trailers");
        }

        // HTTP/2 :authority is the visitor's Host; the forwarded headers say who asked and how.
        request.Headers.Host = source.Host.Value;
        request.Headers.TryAddWithoutValidation(TunnelHeaderNames.ForwardedFor, context.Connection.RemoteIpAddress?.ToString() ?? "");
        request.Headers.TryAddWithoutValidation(TunnelHeaderNames.ForwardedProto, source.Scheme);
        request.Headers.TryAddWithoutValidation(TunnelHeaderNames.ForwardedHost, source.Host.Value);
        if (System.Diagnostics.Activity.Current is { } span)
        {
            System.Diagnostics.DistributedContextPropagator.Current.Inject(span, request, static (carrier, name, value) =>
                ((HttpRequestMessage)carrier!).Headers.TryAddWithoutValidation(name, value));
        }

        return request;
    }

    private async Task CopyResponseAsync(HttpContext context, HttpResponseMessage upstream, string requestId, string host)
    {
        var response = context.Response;
        response.StatusCode = (int)upstream.StatusCode;
        var connectionTokens = GetConnectionTokens(upstream.Headers);
        CopyHeaders(upstream.Headers, response.Headers, connectionTokens);
        CopyHeaders(upstream.Content.Headers, response.Headers, connectionTokens);

        // Stream as the origin writes: server-sent events and long polls must not wait in a buffer.
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            Stream body;
            try
            {
                body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
                await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return;
            }

            await using (body.ConfigureAwait(false))
            {
                while (true)
                {
                    int read;
                    try
                    {
                        read = await body.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false);
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

                    await response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted).ConfigureAwait(false);
                    await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                }
            }

            if (upstream.TrailingHeaders.Any() && response.SupportsTrailers())
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

    private static void CopyHeaders(System.Net.Http.Headers.HttpHeaders from, IHeaderDictionary to, HashSet<string>? connectionTokens)
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
        return connection.Count == 0 ? null : ParseTokens(connection.ToString());
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
