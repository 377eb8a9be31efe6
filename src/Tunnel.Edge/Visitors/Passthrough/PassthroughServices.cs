using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>Adds routes that take whole connections to the edge: services, and the TCP routes' ports.</summary>
internal static class PassthroughServices
{
    public static void Add(IServiceCollection services, EdgeOptions options)
    {
        services.AddSingleton<ConnectionRouteTables>();
        services.AddSingleton<ConnectionRouteMetrics>();
        services.AddSingleton<ConnectionRelay>();
        services.AddSingleton(new ConnectionModePolicy(options));
        services.AddSingleton(new TcpRouteListeners());
        services.AddSingleton(sp => new PassthroughRouter(
            sp.GetRequiredService<ConnectionRelay>(),
            sp.GetRequiredService<VisitorConnectionLimits>(),
            sp.GetRequiredService<HostPolicies>(),
            options.Limits.MaxRequestHeadersTotalSize + MaxRequestLineBytes));
    }

    // Kestrel's default request-line limit, on top of the header fields' limit: the most a request head may take.
    private const int MaxRequestLineBytes = 8 * 1024;

    /// <summary>Listens on each TCP route's port; every connection there goes to the route (or is closed).</summary>
    public static void ListenTcpRoutes(KestrelServerOptions kestrel, EdgeOptions options, VisitorConnectionLimits limits)
    {
        var router = kestrel.ApplicationServices.GetRequiredService<PassthroughRouter>();
        var listeners = kestrel.ApplicationServices.GetRequiredService<TcpRouteListeners>();
        foreach (var route in options.Connections.TcpRoutes)
        {
            kestrel.Listen(IPAddress.Parse(options.VisitorAddress), route.Port, listen =>
            {
                listen.Use(limits.Middleware);
                var relay = router.Tcp(route.Hostname.Trim().TrimEnd('.').ToLowerInvariant());
                listen.Run(connection => relay(connection));
                listeners.Add(route.Hostname, listen);
            });
        }
    }
}

/// <summary>The TCP routes' listen options, to read their bound ports once the edge started.</summary>
internal sealed class TcpRouteListeners
{
    private readonly List<(string Hostname, ListenOptions Listen)> _listeners = [];

    public void Add(string hostname, ListenOptions listen) => _listeners.Add((hostname, listen));

    /// <summary>The bound endpoint of the TCP route for <paramref name="hostname"/>, or <c>null</c>.</summary>
    public IPEndPoint? EndPointOf(string hostname) =>
        _listeners.FirstOrDefault(l => string.Equals(l.Hostname, hostname, StringComparison.OrdinalIgnoreCase)).Listen?.IPEndPoint;

    /// <summary>Every TCP route's bound endpoint.</summary>
    public IReadOnlyList<IPEndPoint> EndPoints => _listeners.Select(l => l.Listen.IPEndPoint).OfType<IPEndPoint>().ToArray();
}
