using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// Log events of the origin app's readiness as its tunnels' anchors report it, and of the requests the
/// edge answered itself because no ready tunnel was left. Event ids 480-489.
/// </summary>
internal static partial class ReadinessLog
{
    [LoggerMessage(480, LogLevel.Information, "Tunnel {TunnelId} of connector {ConnectorId} ({Hostnames}): the app reports not ready; no new requests are sent on it until it is ready again, those in flight finish.", EventName = "TunnelNotReady")]
    public static partial void TunnelNotReady(ILogger logger, string tunnelId, string connectorId, string hostnames);

    [LoggerMessage(481, LogLevel.Information, "Tunnel {TunnelId} of connector {ConnectorId} ({Hostnames}): the app reports ready again; it takes new requests.", EventName = "TunnelReadyAgain")]
    public static partial void TunnelReadyAgain(ILogger logger, string tunnelId, string connectorId, string hostnames);

    [LoggerMessage(482, LogLevel.Warning, "Request {RequestId} for {Host}: 503, every tunnel connection for the route reports its app not ready ({NotReady} connection(s)).", EventName = "RouteNotReady")]
    public static partial void RouteNotReady(ILogger logger, string requestId, string host, int notReady);

    /// <summary>Logs a change of a connection's readiness.</summary>
    public static void Changed(ILogger logger, TunnelConnection connection)
    {
        var hostnames = string.Join(", ", connection.Hostnames.Concat(connection.ConnectionRoutes.Select(r => r.Hostname)));
        if (connection.IsNotReady)
        {
            TunnelNotReady(logger, connection.Id, connection.ConnectorId, hostnames);
        }
        else
        {
            TunnelReadyAgain(logger, connection.Id, connection.ConnectorId, hostnames);
        }
    }
}
