using System.Diagnostics;
using System.Diagnostics.Metrics;
using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// The edge's metrics, meter <c>Tunnel.Edge</c> (BCL <see cref="System.Diagnostics.Metrics"/>; any
/// OpenTelemetry SDK can add it with <c>AddMeter("Tunnel.Edge")</c>, and the admin port's <c>/metrics</c>
/// renders it for Prometheus). Route names (registered hostnames) are an attribute here: the edge's
/// operator bounds their number, unlike visitors' Host headers, which never are.
/// </summary>
public sealed class EdgeMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Tunnel.Edge";

    /// <summary>
    /// The .NET runtime's own meter (GC heap sizes and collections, working set, thread pool, lock
    /// contention), exported beside the edge's: what an operator needs to see when the edge's memory or
    /// latency moves.
    /// </summary>
    public const string RuntimeMeterName = "System.Runtime";

    // OpenTelemetry's advised buckets for HTTP request durations, in seconds: fine below 100 ms where
    // most forwarded requests end, coarse up to 10 s for slow origins.
    private static readonly double[] DurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

    private readonly Counter<long> _registrations;
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _upstreamErrors;
    private readonly UpDownCounter<long> _activeStreams;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _tunnelProtocolErrors;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public EdgeMetrics(IMeterFactory meterFactory, RouteTable routes)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(routes);
        Meter = meterFactory.Create(MeterName);
        Meter.CreateObservableUpDownCounter("tunnel.edge.tunnels", () => routes.ConnectionCount, "{connection}", "Registered tunnel connections.");
        Meter.CreateObservableUpDownCounter("tunnel.edge.connectors", () => routes.Connections().Select(c => c.ConnectorId).Distinct(StringComparer.Ordinal).Count(), "{connector}", "Distinct origin replicas (connector ids) with a registered tunnel connection.");
        _registrations = Meter.CreateCounter<long>("tunnel.edge.registrations", "{registration}", "Registrations by tunnel.registration.result (accepted, rejected) and tunnel.rejection.reason.");
        _requests = Meter.CreateCounter<long>("tunnel.edge.requests", "{request}", "Visitor requests by tunnel.route and http.response.status_class.");
        _duration = Meter.CreateHistogram("tunnel.edge.request.duration", "s", "Visitor request duration, to the end of the response body, by tunnel.route and http.response.status_class.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _upstreamErrors = Meter.CreateCounter<long>("tunnel.edge.upstream.errors", "{error}", "Visitor requests the edge answered itself because the origin could not be reached, by error.type.");
        _activeStreams = Meter.CreateUpDownCounter<long>("tunnel.edge.active_streams", "{request}", "Visitor requests in flight.");
        _tunnelProtocolErrors = Meter.CreateCounter<long>("tunnel.edge.tunnel.protocol_errors", "{connection}",
            "Tunnel connections the edge ended because the origin broke HTTP/2 or a bound on it (GOAWAY, or a write it never read), by error.type.");
        _bytes = Meter.CreateCounter<long>("tunnel.edge.bytes", "By", "Visitor body bytes by network.io.direction (received from visitors, transmitted to them).");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter { get; }

    /// <summary>Counts an accepted registration.</summary>
    public void RegistrationAccepted() => _registrations.Add(1, new KeyValuePair<string, object?>("tunnel.registration.result", "accepted"));

    /// <summary>Counts a refused registration with its rejection code.</summary>
    public void RegistrationRejected(string reason) =>
        _registrations.Add(1, new KeyValuePair<string, object?>("tunnel.registration.result", "rejected"), new KeyValuePair<string, object?>("tunnel.rejection.reason", reason));

    /// <summary>Counts a finished visitor request and records its duration.</summary>
    /// <param name="route">The route (registered hostname) the request's host matched, or <c>null</c>.</param>
    /// <param name="statusCode">The response status.</param>
    /// <param name="seconds">How long it took.</param>
    public void RequestFinished(string? route, int statusCode, double seconds)
    {
        var tags = new TagList();
        if (route is not null)
        {
            tags.Add("tunnel.route", route);
        }

        tags.Add("http.response.status_class", StatusClass(statusCode));
        _requests.Add(1, tags);
        _duration.Record(seconds, tags);
    }

    /// <summary>Counts a request the origin could not answer, by one of the <see cref="UpstreamErrors"/> kinds.</summary>
    public void UpstreamError(string errorType) => _upstreamErrors.Add(1, new KeyValuePair<string, object?>("error.type", errorType));

    /// <summary>
    /// Counts a tunnel connection ended for its origin's fault: <c>control_flood</c>, <c>frame_flood</c>,
    /// <c>continuation_flood</c>, <c>header_block_too_large</c>, <c>idle_stream</c>, <c>push_promise</c>,
    /// <c>write_stalled</c>, or an HTTP/2 error code's name (<c>protocol_error</c>...).
    /// </summary>
    public void TunnelProtocolError(string errorType) => _tunnelProtocolErrors.Add(1, new KeyValuePair<string, object?>("error.type", errorType));

    /// <summary>A visitor request began.</summary>
    public void StreamStarted() => _activeStreams.Add(1);

    /// <summary>A visitor request ended.</summary>
    public void StreamEnded() => _activeStreams.Add(-1);

    /// <summary>Counts body bytes read from a visitor.</summary>
    public void BytesReceived(long count) => _bytes.Add(count, new KeyValuePair<string, object?>("network.io.direction", "received"));

    /// <summary>Counts body bytes written to a visitor.</summary>
    public void BytesTransmitted(long count) => _bytes.Add(count, new KeyValuePair<string, object?>("network.io.direction", "transmitted"));

    /// <summary>The status class label: <c>2xx</c>, <c>4xx</c>, ...</summary>
    public static string StatusClass(int statusCode) => statusCode switch
    {
        >= 100 and < 200 => "1xx",
        >= 200 and < 300 => "2xx",
        >= 300 and < 400 => "3xx",
        >= 400 and < 500 => "4xx",
        >= 500 and < 600 => "5xx",
        _ => "other",
    };
}
