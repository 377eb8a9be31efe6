using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>The ACME client's log lines, event ids 420-449.</summary>
internal static partial class AcmeLog
{
    [LoggerMessage(420, LogLevel.Information, "ACME: account {AccountUrl} at {DirectoryUrl} is ready.", EventName = "AcmeAccountReady")]
    public static partial void AccountReady(ILogger logger, string accountUrl, string directoryUrl);

    [LoggerMessage(421, LogLevel.Information, "ACME: ordering a certificate for {Names} ({Why}).", EventName = "AcmeOrdering")]
    public static partial void Ordering(ILogger logger, string names, string why);

    [LoggerMessage(422, LogLevel.Information, "ACME: {Name} validated by {Challenge}.", EventName = "AcmeAuthorized")]
    public static partial void Authorized(ILogger logger, string name, string challenge);

    [LoggerMessage(423, LogLevel.Information, "ACME: certificate for {Names} issued by {Issuer}, valid until {NotAfter:u}; renewal due {RenewAt:u}.", EventName = "AcmeCertificateIssued")]
    public static partial void Issued(ILogger logger, string names, string issuer, DateTimeOffset notAfter, DateTimeOffset renewAt);

    [LoggerMessage(424, LogLevel.Warning, "ACME: order for {Names} failed ({ProblemType}): {Detail}. {Serving}; next attempt in {RetrySeconds:0} s.", EventName = "AcmeOrderFailed")]
    public static partial void OrderFailed(ILogger logger, string names, string problemType, string detail, string serving, double retrySeconds);

    [LoggerMessage(425, LogLevel.Information, "ACME: no certificate on demand for {Name}: {Reason}.", EventName = "AcmeOnDemandRefused")]
    public static partial void OnDemandRefused(ILogger logger, string name, string reason);

    [LoggerMessage(426, LogLevel.Warning, "ACME: the stored certificate {Path} does not load and is not served: {Reason}", EventName = "AcmeStoredCertificateUnreadable")]
    public static partial void StoredCertificateUnreadable(ILogger logger, string path, string reason);

    [LoggerMessage(427, LogLevel.Information, "ACME: serving the stored certificate for {Names}, valid until {NotAfter:u}; renewal due {RenewAt:u}.", EventName = "AcmeStoredCertificateLoaded")]
    public static partial void StoredCertificateLoaded(ILogger logger, string names, DateTimeOffset notAfter, DateTimeOffset renewAt);

    [LoggerMessage(428, LogLevel.Warning, "ACME: could not remove the DNS-01 record {Record}: {Reason}", EventName = "AcmeDnsCleanupFailed")]
    public static partial void DnsCleanupFailed(ILogger logger, string record, string reason);

    [LoggerMessage(429, LogLevel.Information, "ACME: the renewal information for {Names} is unavailable ({Reason}); renewing at the lifetime fraction.", EventName = "AcmeRenewalInfoUnavailable")]
    public static partial void RenewalInfoUnavailable(ILogger logger, string names, string reason);

    [LoggerMessage(430, LogLevel.Error, "ACME: the certificate loop failed; it starts again in {RetrySeconds:0} s.", EventName = "AcmeLoopFault")]
    public static partial void LoopFault(ILogger logger, Exception exception, double retrySeconds);

    [LoggerMessage(431, LogLevel.Information, "ACME: the handshake for {Name} gets the fallback certificate while its order runs ({Reason}).", EventName = "AcmeHandshakeFallback")]
    public static partial void HandshakeFallback(ILogger logger, string name, string reason);
    [LoggerMessage(440, LogLevel.Warning, "ACME: the certificate {Id} in the cluster store cannot be opened and is not served from there: {Reason}.", EventName = "AcmeSharedCertificateUnreadable")]
    public static partial void SharedCertificateUnreadable(ILogger logger, string id, string reason);

    [LoggerMessage(441, LogLevel.Information, "ACME: {Names} is being ordered by edge {Holder}; this edge serves the certificate once it is shared (looks again in {RetrySeconds:0} s).", EventName = "AcmeOrderedByPeer")]
    public static partial void OrderedByPeer(ILogger logger, string names, string holder, double retrySeconds);

    [LoggerMessage(442, LogLevel.Information, "ACME: serving the certificate for {Names} shared by the cluster, valid until {NotAfter:u}; renewal due {RenewAt:u}.", EventName = "AcmeSharedCertificateAdopted")]
    public static partial void SharedCertificateAdopted(ILogger logger, string names, DateTimeOffset notAfter, DateTimeOffset renewAt);

    [LoggerMessage(443, LogLevel.Warning, "ACME: could not share the certificate for {Names} with the cluster ({Reason}); this edge serves it, and the other edges order their own when theirs is due.", EventName = "AcmeSharePublishFailed")]
    public static partial void SharePublishFailed(ILogger logger, string names, string reason);

    [LoggerMessage(444, LogLevel.Warning, "ACME: the cluster's order lock for {Names} could not be taken ({Reason}); no order until it can, next attempt in {RetrySeconds:0} s.", EventName = "AcmeOrderLockUnavailable")]
    public static partial void OrderLockUnavailable(ILogger logger, string names, string reason, double retrySeconds);
}
