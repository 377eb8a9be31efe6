using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Wraps the visitor pipeline: counts requests in flight, their bodies' bytes, and when each ends its
/// route, status class, duration, and the upstream error kind the forwarder reported.
/// </summary>
public sealed class EdgeRequestMetrics(RequestDelegate next, EdgeMetrics metrics, RecentRequests recent, RouteTable routes)
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
            metrics.RequestFinished(route, status, Stopwatch.GetElapsedTime(started).TotalSeconds);
            recent.Add(route, status);
            if (UpstreamErrors.Get(context) is { } errorType)
            {
                metrics.UpstreamError(errorType);
            }

            metrics.StreamEnded();
        }
    }
}
