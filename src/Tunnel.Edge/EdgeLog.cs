using Microsoft.Extensions.Logging;

namespace Tunnel.Edge;

internal static partial class EdgeLog
{
    [LoggerMessage(1, LogLevel.Information, "Tunnel {ConnectionId} registered from {Remote}: connector {ConnectorId} slot {ConnectionIndex}, hostnames {Hostnames}, client {ClientVersion}.", EventName = "TunnelRegistered")]
    public static partial void TunnelRegistered(ILogger logger, string connectionId, string remote, string connectorId, int connectionIndex, string hostnames, string clientVersion);

    [LoggerMessage(2, LogLevel.Warning, "Refused registration from {Remote} ({RejectionCode}): {Reason}", EventName = "RegistrationRefused")]
    public static partial void RegistrationRefused(ILogger logger, string remote, string rejectionCode, string reason);

    [LoggerMessage(3, LogLevel.Information, "Tunnel {ConnectionId} closed after {UptimeSeconds:0.0} s.", EventName = "TunnelClosed")]
    public static partial void TunnelClosed(ILogger logger, string connectionId, double uptimeSeconds);

    [LoggerMessage(4, LogLevel.Warning, "Tunnel handshake from {Remote} failed: {Reason}", EventName = "HandshakeFailed")]
    public static partial void HandshakeFailed(ILogger logger, string remote, string reason);

    [LoggerMessage(5, LogLevel.Information, "Tunnel listener on {EndPoint}.", EventName = "TunnelListening")]
    public static partial void TunnelListening(ILogger logger, string endPoint);

    [LoggerMessage(6, LogLevel.Warning, "Request {RequestId} for {Host}: {Status} {Reason}", EventName = "RequestFailed")]
    public static partial void RequestFailed(ILogger logger, string requestId, string host, int status, string reason);

    [LoggerMessage(7, LogLevel.Information, "Request {RequestId} for {Host} retried on another tunnel connection: {Reason}", EventName = "RequestRetried")]
    public static partial void RequestRetried(ILogger logger, string requestId, string host, string reason);

    [LoggerMessage(8, LogLevel.Warning, "Request {RequestId} for {Host}: the origin's response broke off: {Reason}", EventName = "ResponseAborted")]
    public static partial void ResponseAborted(ILogger logger, string requestId, string host, string reason);

    [LoggerMessage(20, LogLevel.Information, "Request {RequestId} for {Host}: 403, {Reason}.", EventName = "RequestDenied")]
    public static partial void RequestDenied(ILogger logger, string requestId, string host, string reason);

    [LoggerMessage(21, LogLevel.Information, "Request {RequestId} for {Host}: 429, {Visitor} is over the host's rate limit; retry after {RetryAfterSeconds:0.#} s.", EventName = "RequestRateLimited")]
    public static partial void RequestRateLimited(ILogger logger, string requestId, string host, string visitor, double retryAfterSeconds);

    [LoggerMessage(22, LogLevel.Information, "Request {RequestId} for {Host}: 413, its body of {ContentLength} bytes is over the limit of {MaxRequestBodySize}.", EventName = "RequestBodyTooLarge")]
    public static partial void RequestBodyTooLarge(ILogger logger, string requestId, string host, long contentLength, long maxRequestBodySize);

    [LoggerMessage(23, LogLevel.Warning, "Request {RequestId} for {Host}: 503, {InFlight} requests in flight reach the cap per {Scope}.", EventName = "RequestOverloaded")]
    public static partial void RequestOverloaded(ILogger logger, string requestId, string host, int inFlight, string scope);

    [LoggerMessage(24, LogLevel.Warning, "Request {RequestId} for {Host}: 504, the origin sent no response headers within {TimeoutSeconds:0.###} s.", EventName = "ResponseHeadersTimedOut")]
    public static partial void ResponseHeadersTimedOut(ILogger logger, string requestId, string host, double timeoutSeconds);

    [LoggerMessage(10, LogLevel.Warning, "Tunnel {ConnectionId} has sent no heartbeat for {SilenceMilliseconds:0} ms; sending it no new requests until it does.", EventName = "TunnelSilent")]
    public static partial void TunnelSilent(ILogger logger, string connectionId, double silenceMilliseconds);

    [LoggerMessage(12, LogLevel.Information, "Gave back the memory of {Registrations} registrations: resident set {BeforeMiB:0.0} MiB -> {AfterMiB:0.0} MiB in {Milliseconds:0} ms.", EventName = "MemoryTrimmed")]
    public static partial void MemoryTrimmed(ILogger logger, int registrations, double beforeMiB, double afterMiB, double milliseconds);

    [LoggerMessage(11, LogLevel.Information, "Draining: asked {ConnectionCount} tunnel connections to move; waiting up to {DrainSeconds:0} s for them to close.", EventName = "Draining")]
    public static partial void Draining(ILogger logger, int connectionCount, double drainSeconds);

    [LoggerMessage(30, LogLevel.Debug, "Request {RequestId} for {Host}: WebSocket open through the tunnel (visitor {VisitorProtocol}).", EventName = "WebSocketOpened")]
    public static partial void WebSocketOpened(ILogger logger, string requestId, string host, string visitorProtocol);

    [LoggerMessage(31, LogLevel.Debug, "Request {RequestId} for {Host}: WebSocket ended ({Outcome}) after {DurationSeconds:0.0} s, {BytesFromVisitor} bytes up, {BytesToVisitor} bytes down.", EventName = "WebSocketClosed")]
    public static partial void WebSocketClosed(ILogger logger, string requestId, string host, string outcome, double durationSeconds, long bytesFromVisitor, long bytesToVisitor);

    [LoggerMessage(25, LogLevel.Warning, "Request {RequestId} for {Host}: 431 the request {Problem}", EventName = "RequestHeadersTooLarge")]
    public static partial void RequestHeadersTooLarge(ILogger logger, string requestId, string host, string problem);

    [LoggerMessage(9, LogLevel.Error, "Unexpected failure in the tunnel listener.", EventName = "ListenerFault")]
    public static partial void ListenerFault(ILogger logger, Exception exception);
    // Visitor TLS: ids 40-49.
    [LoggerMessage(40, LogLevel.Information, "Visitor certificate '{CertificatePath}' loaded: {Subject}, names {DnsNames}, valid until {NotAfter:u}.", EventName = "VisitorCertificateLoaded")]
    public static partial void VisitorCertificateLoaded(ILogger logger, string certificatePath, string subject, string dnsNames, DateTime notAfter);

    [LoggerMessage(41, LogLevel.Error, "Reloading the visitor certificate '{CertificatePath}' failed; {Consequence}: {Reason}", EventName = "VisitorCertificateReloadFailed")]
    public static partial void VisitorCertificateReloadFailed(ILogger logger, string certificatePath, string consequence, string reason);

    [LoggerMessage(42, LogLevel.Warning, "Cannot watch '{Directory}' for certificate changes ({Reason}); the periodic check still reloads them.", EventName = "VisitorCertificateWatchFailed")]
    public static partial void VisitorCertificateWatchFailed(ILogger logger, string directory, string reason);

    [LoggerMessage(43, LogLevel.Information, "Visitor HTTPS on {EndPoint} with {CertificateCount} certificate(s).", EventName = "VisitorHttpsListening")]
    public static partial void VisitorHttpsListening(ILogger logger, string endPoint, int certificateCount);
    [LoggerMessage(44, LogLevel.Error, "Checking the visitor certificates failed unexpectedly; the loaded ones stay in use.", EventName = "VisitorCertificateCheckFault")]
    public static partial void VisitorCertificateCheckFault(ILogger logger, Exception exception);

    // Admin listener and telemetry: ids 60-69.
    [LoggerMessage(60, LogLevel.Information, "Admin listener on http://{EndPoint}: the status page at /, Prometheus metrics at /metrics and the admin API under /api/v1/.", EventName = "AdminListening")]
    public static partial void AdminListening(ILogger logger, string endPoint);

    [LoggerMessage(61, LogLevel.Warning, "The admin listener on {EndPoint} is not on loopback: whoever reaches it sees the routes, the origins' addresses and the metrics.", EventName = "AdminNotLoopback")]
    public static partial void AdminNotLoopback(ILogger logger, string endPoint);

    // The tunnel's HTTP/2 against a hostile origin: ids 200-219.
    [LoggerMessage(200, LogLevel.Warning, "Ending tunnel {ConnectionId} of connector {ConnectorId} ({ErrorType}): {Reason}", EventName = "TunnelOriginFault")]
    public static partial void TunnelOriginFault(ILogger logger, string connectionId, string connectorId, string errorType, string reason);

    // Identity: credential files, revocation, admin API: ids 70-79.
    [LoggerMessage(70, LogLevel.Information, "Reloaded '{Path}': {Detail}.", EventName = "CredentialFileReloaded")]
    public static partial void CredentialFileReloaded(ILogger logger, string path, string detail);

    [LoggerMessage(71, LogLevel.Error, "Reloading '{Path}' failed; the edge keeps what it loaded before and tries again: {Reason}", EventName = "CredentialFileReloadFailed")]
    public static partial void CredentialFileReloadFailed(ILogger logger, string path, string reason);

    [LoggerMessage(72, LogLevel.Warning, "Closing tunnel {ConnectionId} of connector {ConnectorId} within {GraceSeconds:0.#} s: {Reason}", EventName = "TunnelCredentialWithdrawn")]
    public static partial void TunnelCredentialWithdrawn(ILogger logger, string connectionId, string connectorId, double graceSeconds, string reason);

    [LoggerMessage(73, LogLevel.Warning, "Admin API request {Method} {Path} from {Remote} refused ({Status}): {Reason}", EventName = "AdminRequestRefused")]
    public static partial void AdminRequestRefused(ILogger logger, string method, string path, string remote, int status, string reason);

    [LoggerMessage(74, LogLevel.Information, "Admin API: {Action}.", EventName = "AdminAction")]
    public static partial void AdminAction(ILogger logger, string action);

    [LoggerMessage(75, LogLevel.Information, "Idle TLS connections (tunnels, visitor HTTPS) keep their record buffers (7-14 KiB each): {Reason}.", EventName = "TlsBufferReleaseUnavailable")]
    public static partial void TlsBufferReleaseUnavailable(ILogger logger, string reason);

    [LoggerMessage(76, LogLevel.Information, "glibc malloc arenas capped at {Arenas}, one per core (set MALLOC_ARENA_MAX to choose otherwise).", EventName = "NativeHeapArenasLimited")]
    public static partial void NativeHeapArenasLimited(ILogger logger, int arenas);

    // ---- 240-259: the tunnel port against unauthenticated clients, and credentials over time ----

    [LoggerMessage(240, LogLevel.Warning, "Closed a tunnel-port connection from {Remote} before its handshake: the edge holds its maximum of {Cap}. {Refused} refused since the last such message (one per {IntervalSeconds:0} s).", EventName = "TunnelHandshakeRefused")]
    public static partial void TunnelHandshakeRefused(ILogger logger, string remote, string cap, long refused, double intervalSeconds);

    // ---- Tenants: per-credential caps and exclusive claims (260-279) ----

    [LoggerMessage(260, LogLevel.Warning, "Refused a tunnel connection from {Remote}: credential {CredentialId} holds {Connections} tunnel connections, its cap of {Limit} per credential.", EventName = "CredentialConnectionLimitReached")]
    public static partial void CredentialConnectionLimitReached(ILogger logger, string remote, string credentialId, int connections, int limit);

    [LoggerMessage(261, LogLevel.Warning, "Refused a registration from {Remote}: credential {CredentialId} names {Hostnames} hostnames, over the cap of {Limit} per registration.", EventName = "CredentialHostnameLimitReached")]
    public static partial void CredentialHostnameLimitReached(ILogger logger, string remote, string credentialId, int hostnames, int limit);

    [LoggerMessage(262, LogLevel.Warning, "Refused a registration from {Remote}: credential {CredentialId} may not register {Hostname}, claimed exclusively by credential {Claimants}.", EventName = "HostnameClaimRefused")]
    public static partial void HostnameClaimRefused(ILogger logger, string remote, string credentialId, string hostname, string claimants);

    // Hostile visitors: connection caps, silent connections, requests in flight per visitor, stream waits: ids 220-239.
    [LoggerMessage(220, LogLevel.Warning, "Closed {Count} visitor connection(s) at a bound in the last {PeriodSeconds:0} s (at most one such line per period); the latest from {Visitor}: {Reason}.", EventName = "VisitorConnectionRefused")]
    public static partial void VisitorConnectionRefused(ILogger logger, long count, double periodSeconds, string visitor, string reason);

    [LoggerMessage(221, LogLevel.Warning, "Request {RequestId} for {Host}: 503, {Visitor} has {InFlight} requests in flight to the host, its cap, and none ended within {WaitSeconds:0.###} s.", EventName = "VisitorRequestsOverCap")]
    public static partial void VisitorRequestsOverCap(ILogger logger, string requestId, string host, string visitor, int inFlight, double waitSeconds);

    [LoggerMessage(222, LogLevel.Warning, "Request {RequestId} for {Host}: 503, no tunnel stream came free within {WaitSeconds:0.###} s.", EventName = "StreamWaitTimedOut")]
    public static partial void StreamWaitTimedOut(ILogger logger, string requestId, string host, double waitSeconds);

    [LoggerMessage(223, LogLevel.Information, "Request {RequestId} for {Host}: WebSocket closed after {IdleSeconds:0.###} s without a byte either way.", EventName = "WebSocketIdleClosed")]
    public static partial void WebSocketIdleClosed(ILogger logger, string requestId, string host, double idleSeconds);

    [LoggerMessage(280, LogLevel.Warning, "Visitor certificate '{CertificatePath}' in the certificate directory is skipped: {Reason}.", EventName = "VisitorCertificateSkipped")]
    public static partial void VisitorCertificateSkipped(ILogger logger, string certificatePath, string reason);
}
