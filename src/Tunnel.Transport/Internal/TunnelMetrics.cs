using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Tunnel.Transport.Internal;

/// <summary>
/// The plugin's metrics, meter <c>Tunnel.Transport</c>, fed from the event stream. BCL APIs only:
/// the app chooses the OpenTelemetry SDK (or anything else that listens). Hostnames are never an
/// attribute here: their number is the app's to grow, not the metrics backend's.
/// </summary>
internal sealed class TunnelMetrics
{
    public const string MeterName = "Tunnel.Transport";

    // Dial phases take milliseconds on a LAN and seconds across the world; the SDK's default buckets
    // (0, 5, 10, ... s) would put every dial in the first one.
    private static readonly double[] DialBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    // A tunnel lives from seconds (flapping) to days (healthy).
    private static readonly double[] LifetimeBuckets = [1, 10, 60, 300, 1800, 3600, 21600, 86400, 604800];

    private readonly Counter<long> _attempts;
    private readonly Counter<long> _rejections;
    private readonly Counter<long> _redials;
    private readonly Histogram<double> _dialDuration;
    private readonly Histogram<double> _lifetime;

    public TunnelMetrics(IMeterFactory meterFactory, TunnelStatus status)
    {
        var meter = meterFactory.Create(MeterName);
        _attempts = meter.CreateCounter<long>("tunnel.connection.attempts", "{attempt}", "Dial attempts by result (registered, rejected, failed) and error.type.");
        _rejections = meter.CreateCounter<long>("tunnel.registration.rejections", "{rejection}", "Registrations the edge refused, by reason.");
        _redials = meter.CreateCounter<long>("tunnel.redials", "{redial}", "Connections lost and dialed again.");
        _dialDuration = meter.CreateHistogram("tunnel.dial.duration", "s", "Time spent in each dial phase (tcp, tls, registration).",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DialBuckets });
        _lifetime = meter.CreateHistogram("tunnel.connection.lifetime", "s", "How long registered connections stayed up.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LifetimeBuckets });
        meter.CreateObservableUpDownCounter("tunnel.connections", () => Observe(status), "{connection}", "Connection slots by state, edge and region.");
        meter.CreateObservableUpDownCounter("tunnel.visitor.connections.open", () => status.OpenVisitorConnections, "{connection}", "Visitor connections carried whole (ListenTunnel routes) that Kestrel is serving now.");
    }

    public void Record(TunnelConnectionEvent e)
    {
        switch (e.Kind)
        {
            case TunnelConnectionEventKind.Registered:
                _attempts.Add(1, new KeyValuePair<string, object?>("tunnel.attempt.result", "registered"), Edge(e));
                if (e.Timings is { } timings)
                {
                    _dialDuration.Record(timings.Tcp.TotalSeconds, new KeyValuePair<string, object?>("tunnel.dial.phase", "tcp"));
                    _dialDuration.Record(timings.Tls.TotalSeconds, new KeyValuePair<string, object?>("tunnel.dial.phase", "tls"));
                    _dialDuration.Record(timings.Registration.TotalSeconds, new KeyValuePair<string, object?>("tunnel.dial.phase", "registration"));
                }

                break;
            case TunnelConnectionEventKind.Rejected:
                _attempts.Add(1, new KeyValuePair<string, object?>("tunnel.attempt.result", "rejected"), new KeyValuePair<string, object?>("error.type", e.ErrorType));
                _rejections.Add(1, new KeyValuePair<string, object?>("tunnel.rejection.reason", e.ErrorType), new KeyValuePair<string, object?>("tunnel.rejection.retryable", e.Retryable ?? false));
                break;
            case TunnelConnectionEventKind.DialFailed or TunnelConnectionEventKind.RebalanceFailed:
                _attempts.Add(1, new KeyValuePair<string, object?>("tunnel.attempt.result", "failed"), new KeyValuePair<string, object?>("error.type", e.ErrorType));
                break;
            case TunnelConnectionEventKind.Disconnected or TunnelConnectionEventKind.Moving or TunnelConnectionEventKind.Renewing or TunnelConnectionEventKind.Dropped or TunnelConnectionEventKind.Rebalancing:
                _redials.Add(1, new KeyValuePair<string, object?>("tunnel.redial.cause", e.Kind.ToString().ToLowerInvariant()), Edge(e));
                if (e.Uptime is { } uptime && e.Kind is not (TunnelConnectionEventKind.Moving or TunnelConnectionEventKind.Renewing or TunnelConnectionEventKind.Rebalancing))
                {
                    _lifetime.Record(uptime.TotalSeconds, Edge(e));
                }

                break;
        }
    }

    private static KeyValuePair<string, object?> Edge(TunnelConnectionEvent e) => new("tunnel.edge.name", e.EdgeName ?? "");

    private static IEnumerable<Measurement<int>> Observe(TunnelStatus status)
    {
        var slots = status.Slots;
        foreach (var group in slots.Where(s => s.IsRegistered).GroupBy(s => (s.EdgeName ?? "", s.EdgeRegion ?? "")))
        {
            yield return new Measurement<int>(group.Count(), new TagList
            {
                { "tunnel.connection.state", "registered" },
                { "tunnel.edge.name", group.Key.Item1 },
                { "tunnel.edge.region", group.Key.Item2 },
            });
        }

        yield return new Measurement<int>(slots.Count(s => !s.IsRegistered), new TagList
        {
            { "tunnel.connection.state", "connecting" },
            { "tunnel.edge.name", "" },
            { "tunnel.edge.region", "" },
        });
    }
}
