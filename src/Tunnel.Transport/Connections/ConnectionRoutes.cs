using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;

namespace Tunnel.Transport.Connections;

/// <summary>
/// The endpoints declared with <c>ListenTunnel</c>: what the tunnel registers beside its request
/// hostnames, and where a visitor connection arriving on a tunnel goes.
/// </summary>
internal sealed class ConnectionRoutes
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Hostname, TunnelMode Mode), ConnectionRouteEndPoint> _endPoints = [];

    /// <summary>The routes to register, in the order declared.</summary>
    public IReadOnlyList<ConnectionRoute> Registrations
    {
        get
        {
            lock (_lock)
            {
                return _endPoints.Keys.Select(key => new ConnectionRoute(key.Hostname, ToWire(key.Mode))).ToArray();
            }
        }
    }

    /// <summary>Declares a route; the hostname is normalized already.</summary>
    public ConnectionRouteEndPoint Add(string hostname, TunnelMode mode)
    {
        lock (_lock)
        {
            if (_endPoints.ContainsKey((hostname, mode)))
            {
                throw new ArgumentException($"ListenTunnel: '{hostname}' is already declared for {mode}.", nameof(hostname));
            }

            var endPoint = new ConnectionRouteEndPoint(hostname, mode)
            {
                H2c = mode == TunnelMode.HttpPassthrough ? new ConnectionRouteEndPoint(hostname, mode) : null,
            };
            _endPoints.Add((hostname, mode), endPoint);
            return endPoint;
        }
    }

    /// <summary>The endpoint for a visitor's host in a mode: the exact name, else the wildcard one label up.</summary>
    public ConnectionRouteEndPoint? Find(string host, TunnelMode mode)
    {
        if (!HostnameRules.TryNormalize(host, out var name, out _))
        {
            return null;
        }

        lock (_lock)
        {
            if (_endPoints.TryGetValue((name, mode), out var exact))
            {
                return exact;
            }

            var dot = name.IndexOf('.', StringComparison.Ordinal);
            return dot > 0 && _endPoints.TryGetValue(("*" + name[dot..], mode), out var wildcard) ? wildcard : null;
        }
    }

    public static ConnectionMode ToWire(TunnelMode mode) => mode switch
    {
        TunnelMode.HttpPassthrough => ConnectionMode.Http,
        TunnelMode.TlsPassthrough => ConnectionMode.Tls,
        _ => ConnectionMode.Tcp,
    };

    public static TunnelMode FromWire(ConnectionMode mode) => mode switch
    {
        ConnectionMode.Http => TunnelMode.HttpPassthrough,
        ConnectionMode.Tls => TunnelMode.TlsPassthrough,
        _ => TunnelMode.Tcp,
    };
}

/// <summary>
/// The endpoint Kestrel binds for one <c>ListenTunnel</c> declaration; its listener hands Kestrel the
/// visitor connections that arrive for it.
/// </summary>
internal sealed class ConnectionRouteEndPoint(string hostname, TunnelMode mode) : EndPoint
{
    private Channel<ConnectionContext> _arrivals = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });

    public string Hostname { get; } = hostname;

    public TunnelMode Mode { get; } = mode;

    /// <summary>
    /// For an HTTP passthrough route, the sibling endpoint that serves connections beginning with the
    /// HTTP/2 preface: Kestrel serves cleartext HTTP/2 only on an HTTP/2-only endpoint. <c>null</c> otherwise.
    /// </summary>
    public ConnectionRouteEndPoint? H2c { get; init; }

    /// <summary>Whether Kestrel has bound the endpoint and accepts its connections.</summary>
    public bool IsBound { get; private set; }

    /// <summary>Hands a visitor connection to Kestrel; <c>false</c> when the endpoint is not bound (the app is stopping or not started).</summary>
    public bool TryDeliver(ConnectionContext connection) => IsBound && _arrivals.Writer.TryWrite(connection);

    public IConnectionListener Bind()
    {
        _arrivals = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });
        IsBound = true;
        return new Listener(this, _arrivals);
    }

    public override string ToString() => $"tunnel-{Mode switch { TunnelMode.HttpPassthrough => "http", TunnelMode.TlsPassthrough => "tls", _ => "tcp" }}://{Hostname}";

    private sealed class Listener(ConnectionRouteEndPoint endPoint, Channel<ConnectionContext> arrivals) : IConnectionListener
    {
        public EndPoint EndPoint => endPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                while (await arrivals.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (arrivals.Reader.TryRead(out var connection))
                    {
                        return connection;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }

            return null;
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            endPoint.IsBound = false;
            arrivals.Writer.TryComplete();

            // Connections handed over but not yet accepted end here.
            while (arrivals.Reader.TryRead(out var connection))
            {
                connection.Abort(new ConnectionAbortedException("The app is stopping."));
            }

            return default;
        }

        public ValueTask DisposeAsync() => UnbindAsync();
    }
}
