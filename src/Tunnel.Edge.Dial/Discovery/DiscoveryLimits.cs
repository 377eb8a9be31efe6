namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Every timeout, retry and size figure of SRV discovery and its DNS client, each with the reason for
/// its value, in one place.
/// </summary>
internal static class DiscoveryLimits
{
    /// <summary>
    /// How long one DNS try (one UDP exchange, or one TCP exchange after truncation) may take: a
    /// resolver on the network answers in milliseconds, so waiting longer only delays trying the next one.
    /// </summary>
    public static readonly TimeSpan DnsTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The longest per-try timeout the options accept, so a typo cannot stall discovery for minutes.</summary>
    public static readonly TimeSpan MaxDnsTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Rounds over the server list: two, so that one lost UDP datagram does not fail a lookup.</summary>
    public const int DnsAttempts = 2;

    /// <summary>The most rounds the options accept; with the per-try timeout this bounds a lookup's time.</summary>
    public const int MaxDnsAttempts = 5;

    /// <summary>Nameservers taken from resolv.conf: the first three, as the system resolver (MAXNS) does.</summary>
    public const int MaxResolvConfServers = 3;

    /// <summary>resolv.conf is read whole; a larger file is not a resolver configuration.</summary>
    public const int MaxResolvConfBytes = 64 * 1024;

    /// <summary>
    /// Datagrams with another id or from before our query that one UDP try skips before giving up on
    /// the server: enough for stray late answers, too few for a flood to keep a try alive.
    /// </summary>
    public const int MaxIgnoredDatagrams = 16;

    /// <summary>
    /// CNAME records followed from a queried name to its addresses; real chains are one or two long,
    /// and a bound stops a CNAME loop in a hostile answer.
    /// </summary>
    public const int MaxCnameChain = 8;

    /// <summary>
    /// SRV targets whose addresses are looked up with separate A and AAAA queries when the answer's
    /// additional section lacks them; any further targets are dialed by name. Keeps a huge SRV answer
    /// from turning into thousands of queries.
    /// </summary>
    public const int MaxAddressLookups = 32;

    /// <summary>A and AAAA lookups in flight at once for one SRV answer: quick, without flooding the resolver.</summary>
    public const int AddressLookupParallelism = 8;

    /// <summary>
    /// The shortest time an SRV answer is kept: a zone with TTL 0 or 1 would otherwise turn every
    /// connection slot's edge selection into a DNS round trip.
    /// </summary>
    public static readonly TimeSpan SrvCacheFloor = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The longest time an SRV answer is kept whatever its TTL, so that an edge removed from DNS stops
    /// being dialed within the hour even when the zone says a day.
    /// </summary>
    public static readonly TimeSpan SrvCacheCeiling = TimeSpan.FromHours(1);

    /// <summary>
    /// After a failed refresh, how long the last good list (or the static fallback) is served before DNS
    /// is asked again, so that a DNS outage costs one slow lookup per interval, not one per dial.
    /// </summary>
    public static readonly TimeSpan SrvRetryAfterFailure = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The longest one SRV lookup (with its address lookups) may take before discovery counts it as
    /// failed: the DNS client's own bounds (2 s × 2 rounds × 3 servers, plus the A/AAAA queries) stay
    /// under it, and a stuck custom resolver cannot hold every connection slot.
    /// </summary>
    public static readonly TimeSpan SrvLookupTimeout = TimeSpan.FromSeconds(30);
}
