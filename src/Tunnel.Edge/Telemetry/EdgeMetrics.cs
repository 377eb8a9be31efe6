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
internal sealed class EdgeMetrics
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
    private readonly Counter<long> _handshakesRefused;
    private readonly Counter<long> _tunnelsWithdrawn;
    private readonly Counter<long> _visitorRefused;
    private readonly Counter<long> _adminRefused;
    private readonly Counter<long> _tunnelProtocolErrors;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public EdgeMetrics(IMeterFactory meterFactory, RouteTable routes)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(routes);
        Meter = meterFactory.Create(MeterName);
        Meter.CreateObservableUpDownCounter("tunnel.edge.tunnels", () => routes.ConnectionCount, "{connection}", "Registered tunnel connections.");
        Meter.CreateObservableUpDownCounter("tunnel.edge.connectors", () => routes.Connections().Select(c => c.ConnectorId).Distinct(StringComparer.Ordinal).Count(), "{connector}", "Distinct origin replicas (connector ids) with a registered tunnel connection.");
        Meter.CreateObservableGauge("tunnel.edge.credential.tunnels.max", () => MostTunnelsOfOneCredential(routes), "{connection}", "The most registered tunnel connections any one credential holds; past MaxTunnelConnectionsPerCredential its registrations are refused as credential_limit.");
        Meter.CreateObservableUpDownCounter("tunnel.edge.tunnels.not_ready", () => routes.Connections().Count(c => c.IsNotReady && c.IsAlive), "{connection}", "Registered tunnel connections whose app reports not ready: the edge sends them no new requests until it is ready again.");
        _registrations = Meter.CreateCounter<long>("tunnel.edge.registrations", "{registration}", "Registrations by tunnel.registration.result (accepted, rejected) and tunnel.rejection.reason.");
        _requests = Meter.CreateCounter<long>("tunnel.edge.requests", "{request}", "Visitor requests by tunnel.route, http.response.status_class and, for gRPC calls, rpc.grpc.status_code.");
        _duration = Meter.CreateHistogram("tunnel.edge.request.duration", "s", "Visitor request duration, to the end of the response body, by tunnel.route and http.response.status_class.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _upstreamErrors = Meter.CreateCounter<long>("tunnel.edge.upstream.errors", "{error}", "Visitor requests the edge answered itself because the origin could not be reached, by error.type.");
        _activeStreams = Meter.CreateUpDownCounter<long>("tunnel.edge.active_streams", "{request}", "Visitor requests in flight.");
        _tunnelProtocolErrors = Meter.CreateCounter<long>("tunnel.edge.tunnel.protocol_errors", "{connection}",
            "Tunnel connections the edge ended because the origin broke HTTP/2 or a bound on it (GOAWAY, or a write it never read), by error.type.");
        _bytes = Meter.CreateCounter<long>("tunnel.edge.bytes", "By", "Visitor body bytes by network.io.direction (received from visitors, transmitted to them).");
        _handshakesRefused = Meter.CreateCounter<long>("tunnel.edge.handshakes.refused", "{connection}", "Tunnel-port connections closed before their TLS handshake because a cap on handshakes in flight was reached, by reason.");
        _tunnelsWithdrawn = Meter.CreateCounter<long>("tunnel.edge.tunnels.withdrawn", "{connection}", "Live tunnel connections closed because their credential may no longer serve, by reason (revoked, expired, untrusted).");
        _visitorRefused = Meter.CreateCounter<long>("tunnel.edge.visitor.refused", "{refusal}", "Visitor connections and requests the edge refused or closed at one of its bounds, by reason (see VisitorRefusals).");
        _adminRefused = Meter.CreateCounter<long>("tunnel.edge.admin.refused", "{request}", "Admin port requests refused before they were served, by reason (body_too_large, host_not_allowed).");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter { get; }

    /// <summary>Publishes how many certificate directory pairs are left out now, by reason, read from <paramref name="observe"/> at each collection.</summary>
    public void ObserveVisitorCertificatesSkipped(Func<IEnumerable<Measurement<int>>> observe) =>
        Meter.CreateObservableUpDownCounter("tunnel.edge.visitor_certificates.skipped", observe, "{file}", "Certificate directory pairs left out (devices, FIFOs, oversized files), by reason (not_regular_file, too_large).");

    /// <summary>Counts an admin port request refused before it was served, by <paramref name="reason"/>.</summary>
    public void AdminRequestRefused(string reason) => _adminRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Counts an accepted registration.</summary>
    public void RegistrationAccepted() => _registrations.Add(1, new KeyValuePair<string, object?>("tunnel.registration.result", "accepted"));

    /// <summary>Counts a refused registration with its rejection code.</summary>
    public void RegistrationRejected(string reason) =>
        _registrations.Add(1, new KeyValuePair<string, object?>("tunnel.registration.result", "rejected"), new KeyValuePair<string, object?>("tunnel.rejection.reason", reason));

    /// <summary>Counts a tunnel-port connection refused before its handshake, with the cap that was reached.</summary>
    public void TunnelPortRefused(string reason) => _handshakesRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Counts a live tunnel connection closed because its credential may no longer serve.</summary>
    public void TunnelWithdrawn(string reason) => _tunnelsWithdrawn.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Counts a finished visitor request and records its duration.</summary>
    /// <param name="route">The route (registered hostname) the request's host matched, or <c>null</c>.</param>
    /// <param name="statusCode">The response status.</param>
    /// <param name="seconds">How long it took.</param>
    /// <param name="grpcStatus">For a gRPC call, its status code (<c>rpc.grpc.status_code</c>).</param>
    public void RequestFinished(string? route, int statusCode, double seconds, int? grpcStatus = null)
    {
        var tags = new TagList();
        if (route is not null)
        {
            tags.Add("tunnel.route", route);
        }

        tags.Add("http.response.status_class", StatusClass(statusCode));
        if (grpcStatus is { } code)
        {
            tags.Add("rpc.grpc.status_code", code);
        }

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

    private static int MostTunnelsOfOneCredential(RouteTable routes)
    {
        var connections = routes.Connections();
        return connections.Count == 0 ? 0 : connections.CountBy(c => c.CredentialId, StringComparer.OrdinalIgnoreCase).Max(g => g.Value);
    }

    /// <summary>Counts a visitor connection or request refused or closed at a bound, by one of the <see cref="VisitorRefusals"/> reasons.</summary>
    public void VisitorRefused(string reason) => _visitorRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));

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
