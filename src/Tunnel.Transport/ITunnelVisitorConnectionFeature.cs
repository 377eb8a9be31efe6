namespace Tunnel.Transport;

/// <summary>
/// Present on a visitor connection that an edge relayed whole to an endpoint declared with
/// <c>ListenTunnel</c> (and so on every request on it). Its values come from the edge; the connection's
/// <c>RemoteEndPoint</c> is the visitor's address and port.
/// </summary>
public interface ITunnelVisitorConnectionFeature
{
    /// <summary>The hostname the edge routed the connection by (lower case): the SNI, the first request's host, or the TCP route's name.</summary>
    string Hostname { get; }

    /// <summary>How the connection was routed.</summary>
    TunnelMode Mode { get; }

    /// <summary>The edge port the visitor connected to.</summary>
    int EdgePort { get; }

    /// <summary>The tunnel connection that carries this visitor connection.</summary>
    ITunnelConnectionFeature Tunnel { get; }
}
