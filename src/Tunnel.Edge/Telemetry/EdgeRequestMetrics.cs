using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Wraps the visitor pipeline: counts requests in flight, their bodies' bytes, and when each ends its
/// route, status class, duration, and the upstream error kind the forwarder reported.
/// </summary>
internal sealed class EdgeRequestMetrics(RequestDelegate next, EdgeMetrics metrics, RecentRequests recent, RouteTable routes)
{
    // Made once: a method group converted per request would be two delegates per request.
    private readonly Action<long> _received = metrics.BytesReceived;
    private readonly Action<long> _transmitted = metrics.BytesTransmitted;

    /// <summary>Measures one visitor request.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var started = Stopwatch.GetTimestamp();
        metrics.StreamStarted();
        var host = context.Request.Host.Host;
        var route = string.IsNullOrEmpty(host) ? null : routes.MatchRoute(host);
        var request = context.Request.Body;
        var response = context.Response.Body;
        context.Request.Body = new MeteredBodyStream(request, _received);
        context.Response.Body = new MeteredBodyStream(response, _transmitted);
        var threw = false;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch
        {
            threw = true;
            throw;
        }
        finally
        {
            context.Request.Body = request;
            context.Response.Body = response;

            // An origin that registered while this request waited still counts under its route.
            route ??= string.IsNullOrEmpty(host) ? null : routes.MatchRoute(host);
            // An exception that escapes before the response began becomes Kestrel's 500.
            var status = threw && !context.Response.HasStarted ? StatusCodes.Status500InternalServerError : context.Response.StatusCode;
            metrics.RequestFinished(route, status, Stopwatch.GetElapsedTime(started).TotalSeconds, GrpcStatus(context));
            recent.Add(route, status);
            if (UpstreamErrors.Get(context) is { } errorType)
            {
                metrics.UpstreamError(errorType);
            }

            metrics.StreamEnded();
        }
    }

    /// <summary>
    /// The gRPC status of a gRPC response: in its trailers, or in its headers for a trailers-only
    /// response (an error before any reply). A failed call is an HTTP 200, so without it a dashboard
    /// shows failing gRPC calls as successes.
    /// </summary>
    private static int? GrpcStatus(HttpContext context)
    {
        var response = context.Response;
        if (response.ContentType is not { } type || !type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var value = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers?[GrpcStatusHeader] is { Count: > 0 } trailer
            ? trailer.ToString()
            : response.Headers[GrpcStatusHeader].ToString();
        return int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code) && code <= MaxGrpcStatus ? code : null;
    }

    private const string GrpcStatusHeader = "grpc-status";

    // UNAUTHENTICATED, the highest code gRPC defines; anything else is not a status and not a label.
    private const int MaxGrpcStatus = 16;
}
