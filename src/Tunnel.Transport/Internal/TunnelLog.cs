using Microsoft.Extensions.Logging;

namespace Tunnel.Transport.Internal;

internal static partial class TunnelLog
{
    [LoggerMessage(1, LogLevel.Information, "Tunnel connection {ConnectionIndex} registered with edge {Edge} at {EdgeAddress} as {TunnelConnectionId} in {DialMilliseconds:0} ms.", EventName = "Registered")]
    public static partial void Registered(ILogger logger, int connectionIndex, string edge, string edgeAddress, string tunnelConnectionId, double dialMilliseconds);

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

    [LoggerMessage(26, LogLevel.Warning, "All {HaConnections} tunnel connections go to {EdgeAddress}, the only edge of the best SRV priority ({Priority}) of the {EdgeCount} known: its failure drops every connection at once until they reconnect to an edge of a later priority. Publish another edge at priority {Priority} to keep half of them through a failure.", EventName = "OneBestPriorityEdge")]
    public static partial void OneBestPriorityEdge(ILogger logger, int haConnections, string edgeAddress, int priority, int edgeCount);

    [LoggerMessage(12, LogLevel.Information, "Tunnel connection {ConnectionIndex} waits {WaitMilliseconds:0} ms for edge {EdgeAddress}'s retry-after.", EventName = "WaitingForRetryAfter")]
    public static partial void WaitingForRetryAfter(ILogger logger, int connectionIndex, string edgeAddress, double waitMilliseconds);

    [LoggerMessage(13, LogLevel.Warning, "Tunnel connection {ConnectionIndex} ({TunnelConnectionId}) dropped: {Reason}.", EventName = "TunnelSilent")]
    public static partial void TunnelSilent(ILogger logger, int connectionIndex, string tunnelConnectionId, string reason);

    [LoggerMessage(9, LogLevel.Information, "Keeping the app's URL listeners {Urls} beside the tunnel.", EventName = "KeepingUrls")]
    public static partial void KeepingUrls(ILogger logger, string urls);

    [LoggerMessage(14, LogLevel.Information, "Tunnel connection {ConnectionIndex} ({TunnelConnectionId}) is replaced because the credential was renewed; it serves until the replacement is registered.", EventName = "Renewing")]
    public static partial void Renewing(ILogger logger, int connectionIndex, string tunnelConnectionId);

    [LoggerMessage(15, LogLevel.Information, "Credential {CredentialId} loaded from {Source}: {Subject}, valid until {NotAfter:u}.", EventName = "CredentialLoaded")]
    public static partial void CredentialLoaded(ILogger logger, string credentialId, string source, string subject, DateTimeOffset notAfter);

    [LoggerMessage(16, LogLevel.Information, "Credential renewed: {CredentialId} from {Source}, valid until {NotAfter:u}; new connections use it and the {ConnectionCount} open ones are replaced one at a time.", EventName = "CredentialRenewed")]
    public static partial void CredentialRenewed(ILogger logger, string credentialId, string source, DateTimeOffset notAfter, int connectionCount);

    [LoggerMessage(17, LogLevel.Warning, "The changed credential is not usable; the tunnel keeps credential {CredentialId} and reads the files again on their next change: {Reason}", EventName = "CredentialReloadFailed")]
    public static partial void CredentialReloadFailed(ILogger logger, string credentialId, string reason);

    [LoggerMessage(18, LogLevel.Warning, "Credential {CredentialId} expires at {NotAfter:u}, in {RemainingHours:0.#} h: renew it (tunnel-edge issue) before then; the edge refuses an expired certificate.", EventName = "CredentialExpiring")]
    public static partial void CredentialExpiring(ILogger logger, string credentialId, DateTimeOffset notAfter, double remainingHours);

    [LoggerMessage(19, LogLevel.Warning, "Credential {CredentialId} expired at {NotAfter:u}: the edge refuses new tunnel connections with it; open ones keep serving until they close. Renew it (tunnel-edge issue).", EventName = "CredentialExpired")]
    public static partial void CredentialExpired(ILogger logger, string credentialId, DateTimeOffset notAfter);

    [LoggerMessage(20, LogLevel.Warning, "Cannot watch {Directory} for credential changes ({Reason}); the periodic check still reads the files every {IntervalSeconds:0} s.", EventName = "CredentialWatchFailed")]
    public static partial void CredentialWatchFailed(ILogger logger, string directory, string reason, double intervalSeconds);

    [LoggerMessage(21, LogLevel.Error, "Replacing tunnel connections after a credential renewal failed unexpectedly; new dials still use the renewed credential.", EventName = "RenewalFault")]
    public static partial void RenewalFault(ILogger logger, Exception exception);

    [LoggerMessage(22, LogLevel.Error, "Checking the credential files failed unexpectedly; the loaded credential stays in use.", EventName = "CredentialCheckFault")]
    public static partial void CredentialCheckFault(ILogger logger, Exception exception);

    [LoggerMessage(23, LogLevel.Information, "Tunnel connection {ConnectionIndex} ({TunnelConnectionId}) on edge {EdgeName} moves {Reason}: the replacement is registered there, and this connection closes once its open requests finish.", EventName = "Rebalancing")]
    public static partial void Rebalancing(ILogger logger, int connectionIndex, string tunnelConnectionId, string edgeName, string reason);

    [LoggerMessage(24, LogLevel.Warning, "Tunnel connection {ConnectionIndex} stays where it is: moving it to {EdgeAddress} failed in {Phase} ({ErrorType}): {Reason}", EventName = "RebalanceFailed")]
    public static partial void RebalanceFailed(ILogger logger, int connectionIndex, string edgeAddress, string phase, string errorType, string reason);

    [LoggerMessage(25, LogLevel.Error, "Checking the spread of tunnel connections over the edges failed unexpectedly; the connections stay where they are.", EventName = "RebalanceFault")]
    public static partial void RebalanceFault(ILogger logger, Exception exception);

    [LoggerMessage(60, LogLevel.Warning, "Tunnel connection {ConnectionIndex} to {EdgeAddress} accepts any edge certificate (Tunnel:DangerousAcceptAnyEdgeCertificate): anyone on the path can impersonate the edge and read the traffic. Development only.", EventName = "EdgeCertificateNotValidated")]
    public static partial void EdgeCertificateNotValidated(ILogger logger, int connectionIndex, string edgeAddress);

    [LoggerMessage(61, LogLevel.Warning, "Tunnel connection {ConnectionIndex} to {EdgeAddress}: Tunnel:DangerousAcceptAnyEdgeCertificate is on, but the pinned edge CA ({EdgeCaSubjects}) still applies; Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa would override it.", EventName = "EdgeCertificatePinStillApplies")]
    public static partial void EdgeCertificatePinStillApplies(ILogger logger, int connectionIndex, string edgeAddress, string edgeCaSubjects);
}
