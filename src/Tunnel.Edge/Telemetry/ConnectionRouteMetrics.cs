using System.Diagnostics;
using System.Diagnostics.Metrics;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Metrics of visitor connections carried whole (passthrough and TCP routes), on the edge's meter:
/// connections by route, mode and outcome, their duration, bytes each way, and how many are open.
/// </summary>
internal sealed class ConnectionRouteMetrics
{
    private static readonly double[] DurationBuckets = [0.01, 0.1, 1, 10, 60, 300, 1800, 3600];

    private readonly Counter<long> _connections;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _bytes;
    private readonly UpDownCounter<long> _open;

    public ConnectionRouteMetrics(EdgeMetrics metrics)
    {
        var meter = metrics.Meter;
        _connections = meter.CreateCounter<long>("tunnel.edge.route.connections", "{connection}",
            "Visitor connections carried whole, by tunnel.route, tunnel.connection.mode (http, tls, tcp) and tunnel.connection.outcome (relayed, no_tunnel, not_ready, denied, failed).");
        _duration = meter.CreateHistogram("tunnel.edge.route.connection.duration", "s", "How long visitor connections carried whole stayed open, by tunnel.route and tunnel.connection.mode.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _bytes = meter.CreateCounter<long>("tunnel.edge.route.bytes", "By", "Bytes of visitor connections carried whole, by tunnel.route, tunnel.connection.mode and network.io.direction (received from visitors, transmitted to them).");
        _open = meter.CreateUpDownCounter<long>("tunnel.edge.route.connections.open", "{connection}", "Visitor connections carried whole that are open now, by tunnel.connection.mode.");
    }

    public void Opened(ConnectionMode mode) => _open.Add(1, new KeyValuePair<string, object?>("tunnel.connection.mode", Name(mode)));

    public void Closed(string route, ConnectionMode mode, string outcome, TimeSpan duration, long received, long transmitted)
    {
        var modeTag = new KeyValuePair<string, object?>("tunnel.connection.mode", Name(mode));
        var routeTag = new KeyValuePair<string, object?>("tunnel.route", route);
        _open.Add(-1, modeTag);
        Counted(route, mode, outcome);
        _duration.Record(duration.TotalSeconds, routeTag, modeTag);
        _bytes.Add(received, routeTag, modeTag, new KeyValuePair<string, object?>("network.io.direction", "receive"));
        _bytes.Add(transmitted, routeTag, modeTag, new KeyValuePair<string, object?>("network.io.direction", "transmit"));
    }

    /// <summary>A connection that never opened a tunnel stream (no tunnel, refused).</summary>
    public void Counted(string route, ConnectionMode mode, string outcome) =>
        _connections.Add(1, new KeyValuePair<string, object?>("tunnel.route", route), new KeyValuePair<string, object?>("tunnel.connection.mode", Name(mode)), new KeyValuePair<string, object?>("tunnel.connection.outcome", outcome));

    public static string Name(ConnectionMode mode) => mode switch
    {
        ConnectionMode.Http => "http",
        ConnectionMode.Tls => "tls",
        _ => "tcp",
    };
}
