using System.Collections.Concurrent;
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
    private readonly ConcurrentDictionary<(string Route, ConnectionMode Mode), RouteTally> _tallies = new();

    public ConnectionRouteMetrics(EdgeMetrics metrics)
    {
        var meter = metrics.Meter;
        _connections = meter.CreateCounter<long>("tunnel.edge.route.connections", "{connection}",
            "Visitor connections carried whole, by tunnel.route, tunnel.connection.mode (http, tls, tcp) and tunnel.connection.outcome (relayed, no_tunnel, not_ready, denied, failed, idle).");
        _duration = meter.CreateHistogram("tunnel.edge.route.connection.duration", "s", "How long visitor connections carried whole stayed open, by tunnel.route and tunnel.connection.mode.",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _bytes = meter.CreateCounter<long>("tunnel.edge.route.bytes", "By", "Bytes of visitor connections carried whole, by tunnel.route, tunnel.connection.mode and network.io.direction (received from visitors, transmitted to them).");
        _open = meter.CreateUpDownCounter<long>("tunnel.edge.route.connections.open", "{connection}", "Visitor connections carried whole that are open now, by tunnel.connection.mode.");
    }

    public void Opened(string route, ConnectionMode mode)
    {
        _open.Add(1, new KeyValuePair<string, object?>("tunnel.connection.mode", Name(mode)));
        var tally = Tally(route, mode);
        Interlocked.Increment(ref tally.Open);
        Interlocked.Increment(ref tally.Carried);
    }

    public void Closed(string route, ConnectionMode mode, string outcome, TimeSpan duration, long received, long transmitted)
    {
        var modeTag = new KeyValuePair<string, object?>("tunnel.connection.mode", Name(mode));
        var routeTag = new KeyValuePair<string, object?>("tunnel.route", route);
        _open.Add(-1, modeTag);
        var tally = Tally(route, mode);
        Interlocked.Decrement(ref tally.Open);
        Interlocked.Add(ref tally.Received, received);
        Interlocked.Add(ref tally.Transmitted, transmitted);
        Count(route, mode, outcome);
        _duration.Record(duration.TotalSeconds, routeTag, modeTag);
        _bytes.Add(received, routeTag, modeTag, new KeyValuePair<string, object?>("network.io.direction", "receive"));
        _bytes.Add(transmitted, routeTag, modeTag, new KeyValuePair<string, object?>("network.io.direction", "transmit"));
    }

    /// <summary>A connection that never opened a tunnel stream (no tunnel, denied by the host's rules).</summary>
    public void Counted(string route, ConnectionMode mode, string outcome)
    {
        Count(route, mode, outcome);
        Interlocked.Increment(ref Tally(route, mode).Refused);
    }

    /// <summary>Each route's connections since the edge started, for the status page: open now, carried, not carried, bytes.</summary>
    public IReadOnlyList<RouteConnections> Snapshot() =>
        [.. _tallies.OrderBy(t => t.Key.Route, StringComparer.Ordinal).ThenBy(t => t.Key.Mode)
            .Select(t => new RouteConnections(t.Key.Route, Name(t.Key.Mode), Volatile.Read(ref t.Value.Open), Volatile.Read(ref t.Value.Carried), Volatile.Read(ref t.Value.Refused), Volatile.Read(ref t.Value.Received), Volatile.Read(ref t.Value.Transmitted)))];

    private void Count(string route, ConnectionMode mode, string outcome) =>
        _connections.Add(1, new KeyValuePair<string, object?>("tunnel.route", route), new KeyValuePair<string, object?>("tunnel.connection.mode", Name(mode)), new KeyValuePair<string, object?>("tunnel.connection.outcome", outcome));

    // Routes come from registrations the edge accepted, so the dictionary is bounded by the routes it serves.
    private RouteTally Tally(string route, ConnectionMode mode) => _tallies.GetOrAdd((route, mode), static _ => new RouteTally());

    public static string Name(ConnectionMode mode) => mode switch
    {
        ConnectionMode.Http => "http",
        ConnectionMode.Tls => "tls",
        _ => "tcp",
    };

    private sealed class RouteTally
    {
        public long Open;
        public long Carried;
        public long Refused;
        public long Received;
        public long Transmitted;
    }
}

/// <summary>One route's visitor connections as the status page shows them: open now, carried (a tunnel stream was opened), not carried (no tunnel, denied), bytes.</summary>
internal sealed record RouteConnections(string Route, string Mode, long Open, long Carried, long Refused, long Received, long Transmitted);
