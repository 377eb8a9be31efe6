using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Dns;

/// <summary>The DNS publisher's log messages: ids 400-419. TSIG secrets never appear in them.</summary>
internal static partial class DnsLog
{
    [LoggerMessage(400, LogLevel.Information, "Publishing route hostnames in DNS zone(s) {Zones} with TSIG-signed RFC 2136 updates (owner marker '{Owner}'; records {Removal}).", EventName = "DnsPublishing")]
    public static partial void Publishing(ILogger logger, string zones, string owner, string removal);

    [LoggerMessage(401, LogLevel.Information, "DNS: published {Name} {Type} {Value} in zone {Zone}.", EventName = "DnsRecordPublished")]
    public static partial void Published(ILogger logger, string name, string type, string value, string zone);

    [LoggerMessage(402, LogLevel.Debug, "DNS: {Name} {Type} {Value} is already in zone {Zone}, written by this edge (or its cluster).", EventName = "DnsRecordPresent")]
    public static partial void Present(ILogger logger, string name, string type, string value, string zone);

    [LoggerMessage(403, LogLevel.Warning, "DNS: {Name} already has records in zone {Zone} that this edge did not create ({Detail}); left alone, and tried again in {RetrySeconds:0.#} s.", EventName = "DnsRecordForeign")]
    public static partial void Foreign(ILogger logger, string name, string zone, string detail, double retrySeconds);

    [LoggerMessage(404, LogLevel.Warning, "DNS: the server {Server} refused the update of {Name} in zone {Zone}: {Rcode} ({Detail}); tried again in {RetrySeconds:0.#} s.", EventName = "DnsUpdateRefused")]
    public static partial void Refused(ILogger logger, string server, string name, string zone, string rcode, string detail, double retrySeconds);

    [LoggerMessage(405, LogLevel.Warning, "DNS: the server {Server} for zone {Zone} is unreachable ({Detail}); the update of {Name} is tried again in {RetrySeconds:0.#} s. Routing goes on.", EventName = "DnsServerUnreachable")]
    public static partial void Unreachable(ILogger logger, string server, string zone, string name, string detail, double retrySeconds);

    [LoggerMessage(406, LogLevel.Information, "DNS: removed {Name} {Type} from zone {Zone}: no connector has served it for {GraceSeconds:0.#} s.", EventName = "DnsRecordRemoved")]
    public static partial void Removed(ILogger logger, string name, string type, string zone, double graceSeconds);

    [LoggerMessage(407, LogLevel.Information, "DNS: {Name} was not removed from zone {Zone}: its records are gone or were changed by someone else ({Detail}).", EventName = "DnsRecordNotRemoved")]
    public static partial void NotRemoved(ILogger logger, string name, string zone, string detail);

    [LoggerMessage(408, LogLevel.Debug, "DNS: edge {Holder} of the cluster writes {Name}; this edge leaves it alone.", EventName = "DnsWrittenByPeer")]
    public static partial void WrittenByPeer(ILogger logger, string name, string holder);

    [LoggerMessage(409, LogLevel.Warning, "DNS: cannot take the cluster's lock for {Name} ({Reason}); tried again in {RetrySeconds:0.#} s.", EventName = "DnsLockUnavailable")]
    public static partial void LockUnavailable(ILogger logger, string name, string reason, double retrySeconds);

    [LoggerMessage(410, LogLevel.Information, "DNS: TXT {Name} \"{Value}\" {Action} in zone {Zone}.", EventName = "DnsTxtChanged")]
    public static partial void TxtChanged(ILogger logger, string name, string value, string action, string zone);

    [LoggerMessage(411, LogLevel.Warning, "DNS: the TXT update of {Name} in zone {Zone} failed: {Reason} ({Detail}).", EventName = "DnsTxtFailed")]
    public static partial void TxtFailed(ILogger logger, string name, string zone, string reason, string detail);

    [LoggerMessage(412, LogLevel.Information, "DNS: replaced the records of {Name} in zone {Zone} (this edge's marker, old values) with {Type} {Value}.", EventName = "DnsRecordReplaced")]
    public static partial void Replaced(ILogger logger, string name, string zone, string type, string value);

    [LoggerMessage(413, LogLevel.Error, "DNS: publishing {Name} failed unexpectedly; tried again in {RetrySeconds:0.#} s.", EventName = "DnsPublishFailed")]
    public static partial void PublishFailed(ILogger logger, string name, double retrySeconds, Exception exception);
}
