using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Cluster;

/// <summary>The cluster's log messages: ids 100-129, and 240-259.</summary>
internal static partial class ClusterLog
{
    [LoggerMessage(100, LogLevel.Information, "Joining the cluster as {Name} at {Address} through etcd {Endpoints}, lease TTL {TtlSeconds:0.#} s.", EventName = "ClusterJoining")]
    public static partial void Joining(ILogger logger, string name, string address, string endpoints, double ttlSeconds);

    [LoggerMessage(101, LogLevel.Information, "Lease {LeaseId} granted for {TtlSeconds:0.#} s; the edge's record and routes live under it.", EventName = "LeaseGranted")]
    public static partial void LeaseGranted(ILogger logger, long leaseId, double ttlSeconds);

    [LoggerMessage(102, LogLevel.Warning, "Lease {LeaseId} expired while etcd was out of reach; granting a new one and writing every route again.", EventName = "LeaseLost")]
    public static partial void LeaseLost(ILogger logger, long leaseId);

    [LoggerMessage(103, LogLevel.Warning, "etcd is out of reach ({Reason}); serving from the last copy of the routes and this edge's own tunnels until it answers.", EventName = "StoreUnreachable")]
    public static partial void StoreUnreachable(ILogger logger, string reason);

    [LoggerMessage(104, LogLevel.Information, "etcd answers again; routes written and the copy caught up.", EventName = "StoreReachable")]
    public static partial void StoreReachable(ILogger logger);

    [LoggerMessage(105, LogLevel.Debug, "The watch on etcd broke ({Reason}); reading every key again before watching on.", EventName = "WatchBroken")]
    public static partial void WatchBroken(ILogger logger, string reason);

    [LoggerMessage(106, LogLevel.Warning, "Could not revoke the lease on shutdown ({Reason}); the routes go when it expires.", EventName = "LeaseNotRevoked")]
    public static partial void LeaseNotRevoked(ILogger logger, string reason);

    [LoggerMessage(110, LogLevel.Information, "Peer {Name} ({Region}) at {Address} joined.", EventName = "PeerAdded")]
    public static partial void PeerAdded(ILogger logger, string name, string region, string address);

    [LoggerMessage(111, LogLevel.Information, "Peer {Name} left the cluster.", EventName = "PeerRemoved")]
    public static partial void PeerRemoved(ILogger logger, string name);

    [LoggerMessage(112, LogLevel.Warning, "Peer {Name} at {Address} does not answer; forwarding to others until it does.", EventName = "PeerUnreachable")]
    public static partial void PeerUnreachable(ILogger logger, string name, string address);

    [LoggerMessage(113, LogLevel.Information, "Peer {Name} answers, round trip {RttMilliseconds:0.0} ms.", EventName = "PeerReachable")]
    public static partial void PeerReachable(ILogger logger, string name, double rttMilliseconds);

    [LoggerMessage(114, LogLevel.Debug, "Request {RequestId} for {Host} forwarded to peer {Peer}.", EventName = "RequestForwardedToPeer")]
    public static partial void RequestForwarded(ILogger logger, string requestId, string host, string peer);

    [LoggerMessage(115, LogLevel.Warning, "Request {RequestId} for {Host}: peer {Peer} could not be reached ({Reason}); trying another.", EventName = "PeerForwardFailed")]
    public static partial void PeerForwardFailed(ILogger logger, string requestId, string host, string peer, string reason);

    [LoggerMessage(116, LogLevel.Warning, "Peer {Peer} forwarded a request without the visitor's address, scheme or host ({Visitor}, {Scheme}, {Host}); refused.", EventName = "PeerRequestMalformed")]
    public static partial void PeerRequestMalformed(ILogger logger, string peer, string visitor, string scheme, string host);

    // ---- 240-259: credentials over time (revocations through the store, peer trust reloaded) ----

    [LoggerMessage(240, LogLevel.Information, "Revocation of credential {CredentialId} published to the cluster.", EventName = "RevocationPublished")]
    public static partial void RevocationPublished(ILogger logger, string credentialId);

    [LoggerMessage(241, LogLevel.Warning, "Took {Count} new revocation(s) from the cluster ({Total} credential(s) revoked in all); their tunnels here are closed.", EventName = "ClusterRevocationsApplied")]
    public static partial void RevocationsApplied(ILogger logger, int count, int total);

    [LoggerMessage(242, LogLevel.Information, "The inter-edge port's certificate is now {Subject}, serial {Serial}, valid until {NotAfter:u}: new peer connections use it.", EventName = "PeerCertificateReloaded")]
    public static partial void PeerCertificateReloaded(ILogger logger, string subject, string serial, DateTime notAfter);

    [LoggerMessage(243, LogLevel.Error, "Reloading the inter-edge port's certificate from '{Path}' failed; the edge keeps the one it has and tries again: {Reason}", EventName = "PeerCertificateReloadFailed")]
    public static partial void PeerCertificateReloadFailed(ILogger logger, string path, string reason);

    [LoggerMessage(244, LogLevel.Warning, "Closed an inter-edge connection from {Subject}: {Reason}.", EventName = "PeerConnectionClosedUntrusted")]
    public static partial void PeerConnectionClosedUntrusted(ILogger logger, string subject, string reason);
}
