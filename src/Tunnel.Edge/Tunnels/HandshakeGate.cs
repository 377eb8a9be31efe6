using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
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
    private readonly Dictionary<IPAddress, int> _byAddress = [];
    private readonly Lock _lock = new();
    private readonly ILogger _logger;
    private readonly EdgeMetrics _metrics;
    private readonly TimeProvider _time;
    private int _inFlight;
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
        _metrics = metrics;
        _logger = logger;
        _time = time;
        metrics.Meter.CreateObservableUpDownCounter("tunnel.edge.handshakes.active", () => Volatile.Read(ref _inFlight), "{connection}",
            "Tunnel-port connections accepted and not yet registered (TLS handshake and registration frame).");
    }

    /// <summary>Connections holding a place now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// Takes a place for a connection from <paramref name="remote"/>; <c>null</c> when a cap is reached
    /// (logged and counted here, the caller only closes the socket).
    /// </summary>
    public Admission? TryEnter(EndPoint? remote)
    {
        var address = KeyOf(remote);
        string? refusal = null;
        lock (_lock)
        {
            var fromAddress = _byAddress.GetValueOrDefault(address);
            if (_inFlight >= _max)
            {
                refusal = TotalCapReason;
            }
            else if (fromAddress >= _maxPerAddress)
            {
                refusal = AddressCapReason;
            }
            else
            {
                _byAddress[address] = fromAddress + 1;
                _inFlight++;
            }
        }

        if (refusal is null)
        {
            return new Admission(this, address);
        }

        Refused(remote, refusal);
        return null;
    }

    private void Leave(IPAddress address)
    {
        lock (_lock)
        {
            _inFlight--;
            var left = _byAddress[address] - 1;
            if (left == 0)
            {
                _byAddress.Remove(address);
            }
            else
            {
                _byAddress[address] = left;
            }
        }
    }

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

    /// <summary>The address a connection counts against: IPv4 (mapped or not) as is, IPv6 by its /64.</summary>
    internal static IPAddress KeyOf(EndPoint? remote)
    {
        if (remote is not IPEndPoint { Address: var address })
        {
            return IPAddress.None;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address;
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes);
    }

    /// <summary>A place taken; disposing gives it back (once, however often it is disposed).</summary>
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
