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

    // An entry exists only while its address has a connection open, so addresses cannot grow the table.
    private readonly Dictionary<IPAddress, int> _perVisitor = [];
    private int _open;

    private long _lastLogTimestamp;
    private long _unlogged;

    public VisitorConnectionLimits(EdgeLimitsOptions limits, EdgeMetrics metrics, ILogger logger, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(limits);
        _maxConnections = limits.MaxConcurrentConnections;
        _maxPerVisitor = limits.MaxConnectionsPerVisitor;
        FirstBytesTimeout = limits.RequestHeadersTimeout;
        _metrics = metrics;
        _logger = logger;
        Time = time;
        _lastLogTimestamp = time.GetTimestamp() - (long)(LogInterval.TotalSeconds * time.TimestampFrequency);
        metrics.Meter.CreateObservableUpDownCounter("tunnel.edge.visitor.connections", () => Volatile.Read(ref _open), "{connection}", "Open visitor connections on the visitor ports.");
    }

    /// <summary>How long a new connection may stay silent (or send part of the HTTP/2 preface only).</summary>
    public TimeSpan FirstBytesTimeout { get; }

    public TimeProvider Time { get; }

    /// <summary>The connection middleware for each visitor port; runs before TLS and the h2c sniff.</summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var key = KeyOf(connection.RemoteEndPoint);
        if (TryEnter(key) is { } refusal)
        {
            Refused(refusal, connection.RemoteEndPoint, refusal == VisitorRefusals.ConnectionLimit
                ? $"the visitor ports hold {_maxConnections} connections, the cap (Limits:MaxConcurrentConnections)"
                : $"the address holds {_maxPerVisitor} connections, the cap per visitor (Limits:MaxConnectionsPerVisitor)");
            return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            Exit(key);
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

    private static IPAddress? KeyOf(EndPoint? remote)
    {
        if (remote is not IPEndPoint { Address: var address })
        {
            return null;
        }

        return EdgeAccessMiddleware.RateLimitKey(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
    }

    /// <returns>The refusal reason, or <c>null</c> when the connection was counted.</returns>
    private string? TryEnter(IPAddress? key)
    {
        lock (_lock)
        {
            if (_open >= _maxConnections)
            {
                return VisitorRefusals.ConnectionLimit;
            }

            if (key is not null)
            {
                _perVisitor.TryGetValue(key, out var count);
                if (count >= _maxPerVisitor)
                {
                    return VisitorRefusals.VisitorConnectionLimit;
                }

                _perVisitor[key] = count + 1;
            }

            _open++;
            return null;
        }
    }

    private void Exit(IPAddress? key)
    {
        lock (_lock)
        {
            _open--;
            if (key is not null && _perVisitor.TryGetValue(key, out var count))
            {
                if (count <= 1)
                {
                    _perVisitor.Remove(key);
                }
                else
                {
                    _perVisitor[key] = count - 1;
                }
            }
        }
    }
}
