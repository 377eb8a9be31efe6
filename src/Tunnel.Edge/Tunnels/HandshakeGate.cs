using System.Net;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// Bounds the tunnel port's connections that have not registered yet (TLS handshake, then the
/// registration frame): at most <see cref="EdgeOptions.MaxTunnelHandshakes"/> in all and
/// <see cref="EdgeOptions.MaxTunnelHandshakesPerAddress"/> from one source address (an IPv6 /64 counts
/// as one address, as one host can hold all of it). Until a client has registered it has proved nothing,
/// so one address that opens sockets and stalls holds at most its own share, and origins from other
/// addresses still get in. A connection over a cap is closed at once, before any TLS byte, logged
/// (rate-limited) and counted.
/// </summary>
internal sealed class HandshakeGate
{
    /// <summary>The metric reason for the cap on every handshake in flight.</summary>
    public const string TotalCapReason = "handshakes_in_flight";

    /// <summary>The metric reason for the cap on one address's handshakes in flight.</summary>
    public const string AddressCapReason = "handshakes_in_flight_per_address";

    // A flood refused thousands of times a second must not become thousands of log lines: one line per
    // interval says how many were refused since the last.
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(5);

    private readonly int _max;
    private readonly int _maxPerAddress;
    private readonly AddressQuota _handshakes;
    private readonly ILogger _logger;
    private readonly EdgeMetrics _metrics;
    private readonly TimeProvider _time;
    private long _lastLogged = long.MinValue;
    private long _refusedSinceLog;

    /// <summary>Creates the gate with the options' caps.</summary>
    public HandshakeGate(EdgeOptions options, EdgeMetrics metrics, ILogger logger, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxTunnelHandshakes, 1, nameof(options.MaxTunnelHandshakes));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxTunnelHandshakesPerAddress, 1, nameof(options.MaxTunnelHandshakesPerAddress));
        _max = options.MaxTunnelHandshakes;
        _maxPerAddress = options.MaxTunnelHandshakesPerAddress;
        _handshakes = new AddressQuota(_max, _maxPerAddress);
        _metrics = metrics;
        _logger = logger;
        _time = time;
        metrics.Meter.CreateObservableUpDownCounter("tunnel.edge.handshakes.active", () => _handshakes.Held, "{connection}",
            "Tunnel-port connections accepted and not yet registered (TLS handshake and registration frame).");
    }

    /// <summary>Connections holding a place now.</summary>
    public int InFlight => _handshakes.Held;

    /// <summary>
    /// Takes a place for a connection from <paramref name="remote"/>; <c>null</c> when a cap is reached
    /// (logged and counted here, the caller only closes the socket).
    /// </summary>
    public Admission? TryEnter(EndPoint? remote)
    {
        // Not an IP endpoint (never on the tunnel port): counted under one key of its own.
        var address = AddressQuota.KeyOf(remote) ?? IPAddress.None;
        var refusal = _handshakes.TryEnter(address) switch
        {
            AddressQuota.Refusal.None => null,
            AddressQuota.Refusal.Total => TotalCapReason,
            _ => AddressCapReason,
        };
        if (refusal is null)
        {
            return new Admission(this, address);
        }

        Refused(remote, refusal);
        return null;
    }

    private void Leave(IPAddress address) => _handshakes.Exit(address);

    private void Refused(EndPoint? remote, string reason)
    {
        _metrics.TunnelPortRefused(reason);
        var refused = Interlocked.Increment(ref _refusedSinceLog);
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastLogged);
        if ((last != long.MinValue && _time.GetElapsedTime(last, now) < LogInterval) || Interlocked.CompareExchange(ref _lastLogged, now, last) != last)
        {
            return;
        }

        // This line reports the refusals counted so far; the next one those after.
        refused = Interlocked.Exchange(ref _refusedSinceLog, 0);
        var cap = reason == TotalCapReason ? $"{_max} handshakes in flight (MaxTunnelHandshakes)" : $"{_maxPerAddress} handshakes in flight from one address (MaxTunnelHandshakesPerAddress)";
        EdgeLog.TunnelHandshakeRefused(_logger, remote?.ToString() ?? "?", cap, refused, LogInterval.TotalSeconds);
    }

    internal sealed class Admission(HandshakeGate gate, IPAddress address) : IDisposable
    {
        private int _left;

        /// <inheritdoc />
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _left, 1) == 0)
            {
                gate.Leave(address);
            }
        }
    }
}
