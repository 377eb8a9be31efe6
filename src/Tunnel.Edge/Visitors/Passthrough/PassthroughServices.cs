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

    /// <summary>Adds every problem of <c>Edge:Connections:TcpRoutes</c> to <paramref name="problems"/>.</summary>
    public static void Validate(EdgeOptions options, List<string> problems)
    {
        var hostnames = new HashSet<string>(StringComparer.Ordinal);
        var ports = new HashSet<int>();
        int[] taken = [options.VisitorHttpPort, options.VisitorHttpsPort, options.TunnelPort, options.AdminPort];
        for (var i = 0; i < options.Connections.TcpRoutes.Count; i++)
        {
            var route = options.Connections.TcpRoutes[i];
            var label = $"Connections:TcpRoutes:{i}";
            if (route.Port is < 0 or > 65535)
            {
                problems.Add($"{label}:Port is {route.Port}; it must be between 1 and 65535 (0 picks a free port).");
            }
            else if (route.Port > 0 && (!ports.Add(route.Port) || taken.Contains(route.Port)))
            {
                problems.Add($"{label}:Port {route.Port} is already used by another route or another of the edge's ports.");
            }

            if (!Protocol.HostnameRules.TryNormalize(route.Hostname, out var name, out var error))
            {
                problems.Add($"{label}:Hostname: {error}.");
            }
            else if (name.StartsWith('*'))
            {
                problems.Add($"{label}:Hostname '{route.Hostname}' is a wildcard; a TCP route serves one exact hostname.");
            }
            else if (!hostnames.Add(name))
            {
                problems.Add($"{label}:Hostname '{name}' has another TCP route already.");
            }
        }
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
