using System.Globalization;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// The one place the tunnel listener reports registrations, refusals and closed connections: it
/// counts them in <see cref="EdgeMetrics"/> and keeps the most recent for the status page.
/// </summary>
internal sealed class EdgeConnectionEvents
{
    // A status page's worth: enough to see a flapping origin's pattern, bounded so a storm of
    // refusals costs fixed memory.
    internal const int Capacity = 100;

    private readonly EdgeMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Queue<EdgeConnectionEvent> _recent = new(Capacity);
    private readonly Lock _lock = new();

    /// <summary>Creates the stream.</summary>
    public EdgeConnectionEvents(EdgeMetrics metrics, TimeProvider time)
    {
        _metrics = metrics;
        _time = time;
    }

    /// <summary>The most recent events, oldest first.</summary>
    public IReadOnlyList<EdgeConnectionEvent> Recent
    {
        get
        {
            lock (_lock)
            {
                return [.. _recent];
            }
        }
    }

    /// <summary>A registration was accepted.</summary>
    public void Registered(TunnelConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _metrics.RegistrationAccepted();
        Add(new EdgeConnectionEvent(_time.GetUtcNow(), EdgeConnectionEventKind.Registered, connection.Remote?.ToString() ?? "?", connection.Id, connection.ConnectorId,
            string.Join(",", connection.Hostnames), "", $"slot {connection.ConnectionIndex}"));
    }

    /// <summary>A registration was refused with a rejection code and message.</summary>
    public void Refused(string remote, string code, string message)
    {
        _metrics.RegistrationRejected(code);
        Add(new EdgeConnectionEvent(_time.GetUtcNow(), EdgeConnectionEventKind.Refused, remote, null, null, "", code, message));
    }

    /// <summary>The edge is ending a tunnel connection because its origin broke HTTP/2 or one of the edge's bounds on it.</summary>
    public void OriginFault(string errorType) => _metrics.TunnelProtocolError(errorType);

    /// <summary>A registered connection closed.</summary>
    public void Closed(TunnelConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var uptime = _time.GetUtcNow() - connection.ConnectedAt;
        Add(new EdgeConnectionEvent(_time.GetUtcNow(), EdgeConnectionEventKind.Closed, connection.Remote?.ToString() ?? "?", connection.Id, connection.ConnectorId,
            string.Join(",", connection.Hostnames), "", string.Create(CultureInfo.InvariantCulture, $"after {uptime.TotalSeconds:0.0} s, {connection.Requests} requests")));
    }

    private void Add(EdgeConnectionEvent e)
    {
        lock (_lock)
        {
            if (_recent.Count == Capacity)
            {
                _recent.Dequeue();
            }

            _recent.Enqueue(e);
        }
    }
}
