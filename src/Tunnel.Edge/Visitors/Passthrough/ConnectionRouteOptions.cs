namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// Routes that take visitors' whole connections (<c>Edge:Connections</c>): which modes origins may
/// register, and the edge ports of TCP routes.
/// </summary>
public sealed class ConnectionRouteOptions
{
    /// <summary>
    /// Whether origins may register HTTP passthrough routes: the visitor HTTP port then sends a cleartext
    /// connection whose first request names such a route to it whole, and the edge's per-request rules
    /// (rate limits, header limits, the edge's error pages) no longer see its requests.
    /// </summary>
    /// <remarks>Defaults to <c>true</c>.</remarks>
    public bool HttpPassthrough { get; set; } = true;

    /// <summary>
    /// Whether origins may register TLS passthrough routes: the visitor HTTPS port sends a connection
    /// whose ClientHello names such a route to it whole, and the TLS handshake ends in the app. When on,
    /// the HTTPS port opens even if the edge has no certificate of its own.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool TlsPassthrough { get; set; }

    /// <summary>
    /// TCP routes: an edge port each, whose every connection goes to the origins that registered the
    /// route's hostname in TCP mode. Origins may register TCP routes only for the hostnames listed here.
    /// </summary>
    /// <remarks>Defaults to none.</remarks>
    public List<TcpRouteOptions> TcpRoutes { get; set; } = [];
}

/// <summary>One TCP route: an edge port and the hostname whose origins serve it.</summary>
public sealed class TcpRouteOptions
{
    /// <summary>The edge port (on <c>VisitorAddress</c>); 0 picks a free port (tests).</summary>
    public int Port { get; set; }

    /// <summary>The hostname origins register in TCP mode for this port (an exact name).</summary>
    public string Hostname { get; set; } = "";
}
