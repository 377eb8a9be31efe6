using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Visitors;

/// <summary>
/// Bounds what visitors' connections can hold before any request: open connections on the visitor
/// ports together (<see cref="EdgeLimitsOptions.MaxConcurrentConnections"/>), open connections per
/// visitor address (<see cref="EdgeLimitsOptions.MaxConnectionsPerVisitor"/>, IPv6 per /64 as the rate
/// limit counts), and time before the first bytes (<see cref="EdgeLimitsOptions.RequestHeadersTimeout"/>).
/// A connection over a bound is closed at once, counted, and logged at most once per
/// <see cref="LogInterval"/>, so a flood does not flood the log.
/// </summary>
internal sealed class VisitorConnectionLimits
{
    /// <summary>One line per 10 s says a flood is on and what it is without writing a line per connection.</summary>
    internal static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly int? _maxConnections;
    private readonly int? _maxPerVisitor;
    private readonly EdgeMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly AddressQuota _connections;

    private long _lastLogTimestamp;
    private long _unlogged;

    public VisitorConnectionLimits(EdgeLimitsOptions limits, EdgeMetrics metrics, ILogger logger, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _maxConnections = limits.MaxConcurrentConnections;
        _maxPerVisitor = limits.MaxConnectionsPerVisitor;
        _connections = new AddressQuota(_maxConnections, _maxPerVisitor);
        FirstBytesTimeout = limits.RequestHeadersTimeout;
        _metrics = metrics;
        _logger = logger;
        Time = time;
        _lastLogTimestamp = time.GetTimestamp() - (long)(LogInterval.TotalSeconds * time.TimestampFrequency);
        metrics.Meter.CreateObservableUpDownCounter("tunnel.edge.visitor.connections", () => _connections.Held, "{connection}", "Open visitor connections on the visitor ports.");
    }

    /// <summary>How long a new connection may stay silent (or send part of the HTTP/2 preface only).</summary>
    public TimeSpan FirstBytesTimeout { get; }

    public TimeProvider Time { get; }

    /// <summary>The connection middleware for each visitor port; runs before TLS and the h2c sniff.</summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var key = AddressQuota.KeyOf(connection.RemoteEndPoint);
        switch (_connections.TryEnter(key))
        {
            case AddressQuota.Refusal.Total:
                Refused(VisitorRefusals.ConnectionLimit, connection.RemoteEndPoint, $"the visitor ports hold {_maxConnections} connections, the cap (Limits:MaxConcurrentConnections)");
                return;
            case AddressQuota.Refusal.PerAddress:
                Refused(VisitorRefusals.VisitorConnectionLimit, connection.RemoteEndPoint, $"the address holds {_maxPerVisitor} connections, the cap per visitor (Limits:MaxConnectionsPerVisitor)");
                return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            _connections.Exit(key);
        }
    };

    /// <summary>
    /// The connection middleware for the HTTPS port, after TLS: a visitor that completed its handshake
    /// must then send a request (or the whole HTTP/2 preface) within the request-headers timeout.
    /// Kestrel would otherwise give it its keep-alive timeout (130 s) for nothing.
    /// </summary>
    public ConnectionDelegate AwaitFirstBytes(ConnectionDelegate next) => async connection =>
    {
        if (await H2cHandoff.SniffAsync(connection, this).ConfigureAwait(false) is not H2cHandoff.FirstBytes.TimedOut)
        {
            await next(connection).ConfigureAwait(false);
        }
    };

    /// <summary>Counts and (rate-limited) logs a connection closed at a bound.</summary>
    public void Refused(string reason, EndPoint? remote, string detail)
    {
        _metrics.VisitorRefused(reason);
        lock (_lock)
        {
            _unlogged++;
            if (Time.GetElapsedTime(_lastLogTimestamp) < LogInterval)
            {
                return;
            }

            EdgeLog.VisitorConnectionRefused(_logger, _unlogged, LogInterval.TotalSeconds, remote?.ToString() ?? "(unknown)", detail);
            _unlogged = 0;
            _lastLogTimestamp = Time.GetTimestamp();
        }
    }
}
