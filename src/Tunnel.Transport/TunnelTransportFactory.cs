using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tunnel.Transport.Connections;
using Tunnel.Transport.Internal;

namespace Tunnel.Transport;

/// <summary>
/// The Kestrel transport factory for the tunnel endpoint. It binds only the endpoint that
/// <c>UseTunnelTransport</c> adds; every other endpoint stays with Kestrel's socket transport.
/// </summary>
public sealed class TunnelTransportFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly IOptionsMonitor<TunnelOptions> _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly TimeProvider _time;
    private readonly TunnelEvents _events;
    private readonly string? _environmentName;
    private readonly ConnectionRoutes? _routes;

    internal TunnelTransportFactory(IOptionsMonitor<TunnelOptions> options, ILoggerFactory loggerFactory, TunnelEvents events, TimeProvider? timeProvider = null, string? environmentName = null, ConnectionRoutes? routes = null)
    {
        _routes = routes;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        _options = options;
        _loggerFactory = loggerFactory;
        _events = events;
        _time = timeProvider ?? TimeProvider.System;
        _environmentName = environmentName;
    }

    /// <inheritdoc />
    public bool CanBind(EndPoint endpoint) => endpoint is TunnelEndPoint or ConnectionRouteEndPoint;

    /// <inheritdoc />
    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is ConnectionRouteEndPoint route)
        {
            return new ValueTask<IConnectionListener>(route.Bind());
        }

        if (endpoint is not TunnelEndPoint tunnelEndPoint)
        {
            throw new NotSupportedException($"The tunnel transport binds only its own endpoint, not {endpoint}.");
        }

        var settings = TunnelSettings.Create(_options.CurrentValue, _time, _environmentName, _routes?.Registrations);
        var listener = new TunnelConnectionListener(tunnelEndPoint, settings, _events, _loggerFactory.CreateLogger("Tunnel.Transport"), _time);
        listener.Start();
        return new ValueTask<IConnectionListener>(listener);
    }
}
