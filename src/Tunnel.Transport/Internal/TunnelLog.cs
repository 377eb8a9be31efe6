using Microsoft.Extensions.Logging;

namespace Tunnel.Transport.Internal;

internal static partial class TunnelLog
{
    [LoggerMessage(1, LogLevel.Information, "Tunnel connection {ConnectionIndex} registered with edge {EdgeName} ({EdgeRegion}) at {EdgeAddress} as {TunnelConnectionId} in {DialMilliseconds:0} ms.", EventName = "Registered")]
    public static partial void Registered(ILogger logger, int connectionIndex, string edgeName, string edgeRegion, string edgeAddress, string tunnelConnectionId, double dialMilliseconds);

    [LoggerMessage(2, LogLevel.Warning, "Tunnel connection {ConnectionIndex} to {EdgeAddress} failed in {Phase} ({ErrorType}): {Reason} Retrying in {RetryDelayMilliseconds:0} ms.", EventName = "DialFailed")]
    public static partial void DialFailed(ILogger logger, int connectionIndex, string edgeAddress, string phase, string errorType, string reason, double retryDelayMilliseconds);

    [LoggerMessage(3, LogLevel.Error, "Edge {EdgeAddress} refused tunnel connection {ConnectionIndex} ({RejectionCode}, retryable: {Retryable}): {Reason} Retrying in {RetryDelayMilliseconds:0} ms.", EventName = "RegistrationRejected")]
    public static partial void RegistrationRejected(ILogger logger, int connectionIndex, string edgeAddress, string rejectionCode, bool retryable, string reason, double retryDelayMilliseconds);

    [LoggerMessage(4, LogLevel.Information, "Tunnel connection {ConnectionIndex} to edge {EdgeName} ({TunnelConnectionId}) closed after {UptimeSeconds:0.0} s.", EventName = "Disconnected")]
    public static partial void Disconnected(ILogger logger, int connectionIndex, string edgeName, string tunnelConnectionId, double uptimeSeconds);

    [LoggerMessage(5, LogLevel.Information, "Tunnel connection {ConnectionIndex} closed before it was stable; redialing in {RetryDelayMilliseconds:0} ms.", EventName = "RedialDelayed")]
    public static partial void RedialDelayed(ILogger logger, int connectionIndex, double retryDelayMilliseconds);

    [LoggerMessage(6, LogLevel.Information, "Tunnel starting: {HaConnections} connections to {Edges} for {Hostnames}.", EventName = "Starting")]
    public static partial void Starting(ILogger logger, int haConnections, string edges, string hostnames);

    [LoggerMessage(7, LogLevel.Information, "Tunnel stopped dialing; open connections close with Kestrel's shutdown.", EventName = "Stopping")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(8, LogLevel.Error, "Tunnel connection slot {ConnectionIndex} failed unexpectedly; it restarts.", EventName = "SlotFault")]
    public static partial void SlotFault(ILogger logger, int connectionIndex, Exception exception);

    [LoggerMessage(10, LogLevel.Information, "Edge {EdgeName} asked tunnel connection {ConnectionIndex} ({TunnelConnectionId}) to move; dialing a replacement before it closes.", EventName = "MoveRequested")]
    public static partial void MoveRequested(ILogger logger, int connectionIndex, string edgeName, string tunnelConnectionId);

    [LoggerMessage(11, LogLevel.Warning, "Only {EdgeCount} edge(s) known for {HaConnections} tunnel connections: one edge failure takes the app offline until it returns. Add edges for high availability.", EventName = "FewEdges")]
    public static partial void FewEdges(ILogger logger, int edgeCount, int haConnections);

    [LoggerMessage(12, LogLevel.Information, "Tunnel connection {ConnectionIndex} waits {WaitMilliseconds:0} ms for edge {EdgeAddress}'s retry-after.", EventName = "WaitingForRetryAfter")]
    public static partial void WaitingForRetryAfter(ILogger logger, int connectionIndex, string edgeAddress, double waitMilliseconds);

    [LoggerMessage(13, LogLevel.Warning, "Tunnel connection {ConnectionIndex} ({TunnelConnectionId}) dropped: {Reason}.", EventName = "TunnelSilent")]
    public static partial void TunnelSilent(ILogger logger, int connectionIndex, string tunnelConnectionId, string reason);

    [LoggerMessage(9, LogLevel.Information, "Keeping the app's URL listeners {Urls} beside the tunnel.", EventName = "KeepingUrls")]
    public static partial void KeepingUrls(ILogger logger, string urls);
}
