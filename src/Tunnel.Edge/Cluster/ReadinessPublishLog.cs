using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Cluster;

/// <summary>Log events of the readiness an edge publishes per route for its peers, and of forwarding by it. Event ids 460-469.</summary>
internal static partial class ReadinessPublishLog
{
    [LoggerMessage(460, LogLevel.Information, "Route {Hostname}: published to the cluster as {State}.", EventName = "RouteReadinessPublished")]
    public static partial void Published(ILogger logger, string hostname, string state);

    [LoggerMessage(461, LogLevel.Debug, "Request {RequestId} for {Host}: no tunnel here is ready and no peer publishes a ready one; sent to {Peer}, which publishes not ready.", EventName = "ForwardedToNotReadyPeer")]
    public static partial void ForwardedToNotReadyPeer(ILogger logger, string requestId, string host, string peer);

    /// <summary>The word for a readiness in the log.</summary>
    public static string State(bool ready) => ready ? "ready" : "not ready";
}
