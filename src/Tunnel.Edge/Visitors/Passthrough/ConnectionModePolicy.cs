using Tunnel.Protocol;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>Which connection routes origins may register on this edge (<see cref="ConnectionRouteOptions"/>).</summary>
internal sealed class ConnectionModePolicy(EdgeOptions options)
{
    private readonly HashSet<string> _tcpHostnames = options.Connections.TcpRoutes
        .Select(r => HostnameRules.TryNormalize(r.Hostname, out var name, out _) ? name : r.Hostname)
        .ToHashSet(StringComparer.Ordinal);

    /// <summary>Why a route for <paramref name="hostname"/> (normalized) in <paramref name="mode"/> may not register, or <c>null</c> if it may.</summary>
    public string? Refuse(string hostname, ConnectionMode mode) => mode switch
    {
        ConnectionMode.Http when !options.Connections.HttpPassthrough =>
            $"Edge {options.Name} takes no HTTP passthrough routes (Edge:Connections:HttpPassthrough is off); '{hostname}' can register for requests instead.",
        ConnectionMode.Tls when !options.Connections.TlsPassthrough =>
            $"Edge {options.Name} takes no TLS passthrough routes (Edge:Connections:TlsPassthrough is off); '{hostname}' can register for requests instead.",
        ConnectionMode.Tcp when !_tcpHostnames.Contains(hostname) =>
            $"Edge {options.Name} has no TCP route for '{hostname}' (Edge:Connections:TcpRoutes names the hostnames that may take one, each with its port).",
        _ => null,
    };
}
