using Microsoft.AspNetCore.Http;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Why the edge answered a visitor itself rather than with the origin's response: the forwarder
/// reports the kind at its error points, and <see cref="EdgeRequestMetrics"/> counts it as
/// <c>tunnel.edge.upstream.errors</c> by <c>error.type</c>.
/// </summary>
internal static class UpstreamErrors
{
    /// <summary>No tunnel connection is registered for the host (502).</summary>
    public const string NoTunnel = "no_tunnel";

    /// <summary>Every tunnel connection for the host reports its app not ready (503).</summary>
    public const string NotReady = "not_ready";

    /// <summary>The tunnel connection failed before or while the origin answered (502, or a cut response).</summary>
    public const string ConnectionLost = "connection_lost";

    /// <summary>The origin did not answer in time (504).</summary>
    public const string Timeout = "timeout";

    /// <summary>The origin or the tunnel refused the request (it was draining, or at its limit).</summary>
    public const string Refused = "refused";

    /// <summary>Records the kind for this request; the last one reported wins.</summary>
    public static void Report(HttpContext context, string errorType)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Features.Set(new UpstreamErrorFeature(errorType));
    }

    /// <summary>The kind reported for this request, or <c>null</c>.</summary>
    public static string? Get(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Features.Get<UpstreamErrorFeature>()?.ErrorType;
    }

    /// <summary>The kind for an HTTP client failure on a tunnel connection.</summary>
    public static string Classify(HttpRequestException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        for (Exception? inner = exception; inner is not null; inner = inner.InnerException)
        {
            if (inner is TimeoutException)
            {
                return Timeout;
            }
        }

        // A connection error means the request never reached the origin: the tunnel refused it
        // (GOAWAY, refused stream) on every attempt.
        return exception.HttpRequestError == HttpRequestError.ConnectionError ? Refused : ConnectionLost;
    }

    private sealed record UpstreamErrorFeature(string ErrorType);
}
