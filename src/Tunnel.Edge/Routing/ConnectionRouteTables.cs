using Tunnel.Edge.Tunnels;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Routing;

/// <summary>
/// The routes that take visitors' whole connections, one table per mode beside the request routes'
/// <see cref="RouteTable"/>: a hostname may take requests on one port and connections on another.
/// </summary>
internal sealed class ConnectionRouteTables
{
    public RouteTable Http { get; } = new(static c => c.HostnamesFor(ConnectionMode.Http));

    public RouteTable Tls { get; } = new(static c => c.HostnamesFor(ConnectionMode.Tls));

    public RouteTable Tcp { get; } = new(static c => c.HostnamesFor(ConnectionMode.Tcp));

    /// <summary>The table of a mode.</summary>
    public RouteTable For(ConnectionMode mode) => mode switch
    {
        ConnectionMode.Http => Http,
        ConnectionMode.Tls => Tls,
        _ => Tcp,
    };

    /// <summary>Adds a registered connection to the tables of the modes it takes connections in.</summary>
    public void Add(TunnelConnection connection)
    {
        if (connection.ConnectionRoutes.Count > 0)
        {
            Http.Add(connection);
            Tls.Add(connection);
            Tcp.Add(connection);
        }
    }

    /// <summary>Removes a connection from every table.</summary>
    public void Remove(TunnelConnection connection)
    {
        if (connection.ConnectionRoutes.Count > 0)
        {
            Http.Remove(connection);
            Tls.Remove(connection);
            Tcp.Remove(connection);
        }
    }
}
