namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Why the edge refused or closed a visitor's connection or request at one of its bounds: the
/// <c>reason</c> of <c>tunnel.edge.visitor.refused</c>.
/// </summary>
internal static class VisitorRefusals
{
    /// <summary>The visitor ports hold <c>Limits:MaxConcurrentConnections</c> connections already.</summary>
    public const string ConnectionLimit = "connection_limit";

    /// <summary>The visitor's address holds <c>Limits:MaxConnectionsPerVisitor</c> connections already.</summary>
    public const string VisitorConnectionLimit = "visitor_connection_limit";

    /// <summary>A new connection sent nothing, or only part of the HTTP/2 preface, within the request-headers timeout.</summary>
    public const string FirstBytesTimeout = "first_bytes_timeout";

    /// <summary>The visitor's address had <c>MaxConcurrentRequestsPerVisitor</c> requests in flight to the host, and none ended in time.</summary>
    public const string VisitorRequestLimit = "visitor_request_limit";

    /// <summary>A WebSocket passed no byte either way for <c>Limits:WebSocketIdleTimeout</c>.</summary>
    public const string WebSocketIdle = "websocket_idle";
}
