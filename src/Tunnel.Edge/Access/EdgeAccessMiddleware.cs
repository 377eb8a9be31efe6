using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Cluster;
using Tunnel.Edge.Forwarding;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Access;

/// <summary>
/// Runs before the forwarder: gives the request its id, then applies its host's rules (access lists,
/// rate limit, body size, concurrency cap). A request refused here never reaches the origin. A request
/// another edge of the cluster forwarded was checked there and meets only the concurrency cap here.
/// </summary>
internal sealed class EdgeAccessMiddleware
{
    /// <summary>
    /// Retry-After on a 503 for a concurrency cap: requests in flight usually end within a second, so a
    /// client may come back soon; longer would idle capacity that is already free again.
    /// </summary>
    internal static readonly TimeSpan OverloadRetryAfter = TimeSpan.FromSeconds(1);

    private readonly RequestDelegate _next;
    private readonly HostPolicies _policies;
    private readonly HostConcurrency _concurrency = new();
    private readonly VisitorConcurrency _perVisitor;
    private readonly EdgeMetrics _metrics;
    private readonly ILogger _logger;

    private readonly EdgeLimitsOptions _limits;

    public EdgeAccessMiddleware(RequestDelegate next, HostPolicies policies, EdgeOptions options, EdgeMetrics metrics, TimeProvider time, ILogger<EdgeAccessMiddleware> logger)
    {
        _next = next;
        _policies = policies;
        _metrics = metrics;
        _perVisitor = new VisitorConcurrency(time);
        _logger = logger;
        _limits = options.Limits;
    }

    /// <summary>
    /// The configured header limits, checked here so the visitor gets the edge's page. Kestrel holds a
    /// hard stop at twice these (see <see cref="VisitorLimits"/>) and answers an empty 431 past it.
    /// </summary>
    private string? HeaderProblem(IHeaderDictionary headers)
    {
        var count = 0;
        long size = 0;
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                count++;

                // As on the wire: "name: value\r\n".
                size += name.Length + (value?.Length ?? 0) + 4;
            }
        }

        if (count > _limits.MaxRequestHeaderCount)
        {
            return $"has {count} header fields; at most {_limits.MaxRequestHeaderCount} are allowed";
        }

        return size > _limits.MaxRequestHeadersTotalSize
            ? $"has {size} bytes of header fields; at most {_limits.MaxRequestHeadersTotalSize} are allowed"
            : null;
    }

    public Task InvokeAsync(HttpContext context)
    {
        var rawHost = context.Request.Host.Host;
        if (string.IsNullOrEmpty(rawHost))
        {
            // The forwarder answers 400 with this id.
            context.Features.Set(new EdgeRequestFeature(EdgeRequestFeature.NextRequestId(), _policies.Defaults));
            return _next(context);
        }

        var host = rawHost.TrimEnd('.').ToLowerInvariant();
        var policy = _policies.Resolve(host);
        var requestId = EdgeRequestFeature.NextRequestId();
        context.Features.Set(new EdgeRequestFeature(requestId, policy));
        var visitor = context.Connection.RemoteIpAddress is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : context.Connection.RemoteIpAddress;

        // A request another edge forwarded (set only on the mutual-TLS inter-edge port, for a request
        // with the hop marker) passed that edge's header limits, access lists, rate limit and body
        // limit already: checking again here would count the visitor twice against a rate limit.
        // Only the concurrency cap, which guards this edge's own tunnels, still applies.
        if (context.Features.Get<PeerRequestFeature>() is not null)
        {
            return Capped(context, host, policy, requestId);
        }

        if (HeaderProblem(context.Request.Headers) is { } headerProblem)
        {
            EdgeLog.RequestHeadersTooLarge(_logger, requestId, host, headerProblem);
            return ErrorPages.WriteAsync(context, StatusCodes.Status431RequestHeaderFieldsTooLarge, ErrorPages.TitleFor(StatusCodes.Status431RequestHeaderFieldsTooLarge),
                $"The request to {host} {headerProblem}.", host, requestId);
        }

        if (policy.Refusal(visitor) is { } refusal)
        {
            EdgeLog.RequestDenied(_logger, requestId, host, refusal);
            return ErrorPages.WriteAsync(context, StatusCodes.Status403Forbidden, ErrorPages.TitleFor(StatusCodes.Status403Forbidden),
                $"Your address may not visit {host}.", host, requestId);
        }

        if (policy.RateLimiter is { } limiter && visitor is not null)
        {
            using var lease = limiter.AttemptAcquire(RateLimitKey(visitor));
            if (!lease.IsAcquired)
            {
                var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) && wait > TimeSpan.FromSeconds(1) ? wait : TimeSpan.FromSeconds(1);
                EdgeLog.RequestRateLimited(_logger, requestId, host, visitor.ToString(), retryAfter.TotalSeconds);
                return ErrorPages.WriteAsync(context, StatusCodes.Status429TooManyRequests, ErrorPages.TitleFor(StatusCodes.Status429TooManyRequests),
                    $"Too many requests to {host} from your address. Try again in {Math.Ceiling(retryAfter.TotalSeconds):0} s.", host, requestId, retryAfter);
            }
        }

        if (policy.MaxRequestBodySize is { } maxBody)
        {
            if (context.Request.ContentLength > maxBody)
            {
                EdgeLog.RequestBodyTooLarge(_logger, requestId, host, context.Request.ContentLength.Value, maxBody);
                return RefuseBodyAsync(context, host, requestId, maxBody);
            }

            // A body without a declared length is cut by Kestrel when it passes the limit.
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            {
                bodySize.MaxRequestBodySize = maxBody;
            }
        }

        if (policy.MaxConcurrentRequestsPerVisitor is { } perVisitor && visitor is not null)
        {
            return PerVisitorAsync(context, host, policy, requestId, visitor, perVisitor);
        }

        return Capped(context, host, policy, requestId);
    }

    /// <summary>
    /// Holds the request within its visitor's cap of requests in flight to the host, waiting a bounded
    /// time for a place; then 503 with Retry-After.
    /// </summary>
    private async Task PerVisitorAsync(HttpContext context, string host, HostPolicy policy, string requestId, IPAddress visitor, int perVisitor)
    {
        var key = host + " " + RateLimitKey(visitor);
        var wait = _limits.StreamWaitTimeout;
        var (entered, inFlight) = await _perVisitor.EnterAsync(key, perVisitor, wait, context.RequestAborted).ConfigureAwait(false);
        if (!entered)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                return;
            }

            EdgeLog.VisitorRequestsOverCap(_logger, requestId, host, visitor.ToString(), inFlight, wait.TotalSeconds);
            _metrics.VisitorRefused(VisitorRefusals.VisitorRequestLimit);
            await ErrorPages.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, ErrorPages.TitleFor(StatusCodes.Status503ServiceUnavailable),
                $"Your address has {inFlight} requests open to {host}, as many as one visitor may. Try again when one has ended.", host, requestId, OverloadRetryAfter).ConfigureAwait(false);
            return;
        }

        try
        {
            await Capped(context, host, policy, requestId).ConfigureAwait(false);
        }
        finally
        {
            _perVisitor.Exit(key);
        }
    }

    /// <summary>
    /// Passes the request on within its host's concurrency cap, or answers 503 past it. Without a cap
    /// (the default) the request goes on without another async layer.
    /// </summary>
    private Task Capped(HttpContext context, string host, HostPolicy policy, string requestId)
    {
        if (policy.MaxConcurrentRequests is not { } maxConcurrent)
        {
            return _next(context);
        }

        if (!_concurrency.TryEnter(host, maxConcurrent, out var inFlight))
        {
            EdgeLog.RequestOverloaded(_logger, requestId, host, inFlight, "hostname");
            return ErrorPages.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, ErrorPages.TitleFor(StatusCodes.Status503ServiceUnavailable),
                $"{host} is answering as many requests as it may at once. Try again shortly.", host, requestId, OverloadRetryAfter);
        }

        return CappedAsync(context, host);
    }

    private async Task CappedAsync(HttpContext context, string host)
    {
        try
        {
            await _next(context).ConfigureAwait(false);
        }
        finally
        {
            _concurrency.Exit(host);
        }
    }

    /// <summary>
    /// The bucket a visitor draws from: its IPv4 address, or its IPv6 /64, because one IPv6 subscriber
    /// usually holds a whole /64 and could otherwise take a fresh bucket per request.
    /// </summary>
    internal static IPAddress RateLimitKey(IPAddress visitor)
    {
        if (visitor.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return visitor;
        }

        Span<byte> bytes = stackalloc byte[16];
        visitor.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }

    private static async Task RefuseBodyAsync(HttpContext context, string host, string requestId, long maxBody)
    {
        // Do not drain a body that was refused for its size: close the connection after the page (set
        // when headers go out, as the page clears the response first).
        if (HttpProtocol.IsHttp11(context.Request.Protocol))
        {
            context.Response.OnStarting(() =>
            {
                context.Response.Headers.Connection = "close";
                return Task.CompletedTask;
            });
        }

        await ErrorPages.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, ErrorPages.TitleFor(StatusCodes.Status413PayloadTooLarge),
            $"The request body is larger than {host} accepts ({maxBody.ToString(System.Globalization.CultureInfo.InvariantCulture)} bytes).", host, requestId).ConfigureAwait(false);
    }
}
