namespace Tunnel.Edge.Dns;

/// <summary>
/// Section <c>Edge:Dns</c>: the zones in which the edge publishes the hostnames of its routes with
/// RFC 2136 dynamic updates signed with TSIG, and how it retries and cleans up.
/// </summary>
public sealed class EdgeDnsOptions
{
    /// <summary>The zones the edge may write to.</summary>
    /// <remarks>Defaults to empty: the edge publishes nothing and writes no TXT record.</remarks>
    public List<DnsZoneOptions> Zones { get; set; } = [];

    /// <summary>
    /// How long a published record stays after the last connector serving its name is gone (at this edge
    /// and, in a cluster, at every edge); then the edge deletes it.
    /// </summary>
    /// <remarks>
    /// Defaults to <c>null</c>: records are never removed (a connector that redeploys or moves keeps its
    /// name resolving). A short grace removes a name that only flickered away; a day keeps DNS caches calm.
    /// </remarks>
    public TimeSpan? RemoveAfter { get; set; }

    /// <summary>The TTL in seconds of the records the edge writes.</summary>
    /// <remarks>Defaults to 60.</remarks>
    public int Ttl { get; set; } = 60;

    /// <summary>How long the edge waits for the DNS server's answer to one update.</summary>
    /// <remarks>Defaults to 5 s.</remarks>
    public TimeSpan UpdateTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The first wait before an update that failed is tried again; it doubles on each failure up to <see cref="MaxRetryDelay"/>.</summary>
    /// <remarks>Defaults to 1 s.</remarks>
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between tries of a failing update.</summary>
    /// <remarks>Defaults to 5 minutes.</remarks>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The value of the ownership marker (a TXT record <c>_tunnel-owner.NAME</c>) the edge writes beside each
    /// record it creates; it changes or deletes only records whose marker carries this value.
    /// </summary>
    /// <remarks>
    /// Defaults to <c>tunnel-edge/</c> followed by the edge's name, or in a cluster by the cluster's key
    /// prefix without its slashes (<c>tunnel-edge/tunnel</c>), so that every edge of one cluster owns the records
    /// of the others. Two clusters or edges
    /// sharing a zone must have different owners.
    /// </remarks>
    public string? Owner { get; set; }

    /// <summary>Whether any zone is configured.</summary>
    public bool IsEnabled => Zones.Count > 0;
}

/// <summary>One zone the edge writes to (<c>Edge:Dns:Zones:N</c>).</summary>
public sealed class DnsZoneOptions
{
    /// <summary>The zone's name, e.g. <c>example.com</c>: the zone of the update messages.</summary>
    /// <remarks>Required.</remarks>
    public string Name { get; set; } = "";

    /// <summary>The primary server that takes updates for the zone: <c>IP</c> or <c>IP:port</c> (<c>[IPv6]:port</c>).</summary>
    /// <remarks>Required. The port defaults to 53.</remarks>
    public string Server { get; set; } = "";

    /// <summary>The TSIG key's name, as the server knows it (BIND's <c>key "NAME"</c>).</summary>
    /// <remarks>Required.</remarks>
    public string KeyName { get; set; } = "";

    /// <summary>The TSIG algorithm: <c>hmac-sha256</c>, <c>hmac-sha384</c>, <c>hmac-sha512</c>, <c>hmac-sha224</c> or <c>hmac-sha1</c>.</summary>
    /// <remarks>Defaults to <c>hmac-sha256</c> (what <c>tsig-keygen</c> makes).</remarks>
    public string KeyAlgorithm { get; set; } = "hmac-sha256";

    /// <summary>The TSIG secret in base64. Prefer <see cref="KeySecretPath"/>: a configuration file is often readable by more people than a key file.</summary>
    /// <remarks>Defaults to <c>null</c>. Exactly one of this and <see cref="KeySecretPath"/> is required. Never logged.</remarks>
    public string? KeySecret { get; set; }

    /// <summary>
    /// A file with the TSIG secret: the base64 secret alone, or the key file <c>tsig-keygen</c> writes
    /// (<c>key "NAME" { algorithm ...; secret "..."; };</c>), whose secret is read.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>. Read at start; a missing or unreadable file stops the edge with its path.</remarks>
    public string? KeySecretPath { get; set; }

    /// <summary>
    /// The name the edge's published hostnames point to with a CNAME: the edge's (or, behind a load
    /// balancer, the cluster's) public name, e.g. <c>edge.example.net</c>.
    /// </summary>
    /// <remarks>
    /// Defaults to <c>null</c>: every name gets A/AAAA records of <see cref="Addresses"/> instead. The zone's
    /// apex always gets A/AAAA records (a CNAME cannot sit beside its SOA and NS records).
    /// </remarks>
    public string? Target { get; set; }

    /// <summary>The edge's (or cluster's) public IPv4 and IPv6 addresses, for A and AAAA records.</summary>
    /// <remarks>Defaults to empty. Required when <see cref="Target"/> is unset or a pattern covers the apex.</remarks>
    public List<string> Addresses { get; set; } = [];

    /// <summary>
    /// Which hostnames of routes are published: exact names (<c>app.example.com</c>), the apex, and
    /// <c>*.</c> patterns covering the names one label below (<c>*.example.com</c>). A route's hostname must
    /// fall inside <see cref="Name"/> and match a pattern; a wildcard route (<c>*.apps.example.com</c>) is
    /// published as a wildcard record when a pattern matches it as written.
    /// </summary>
    /// <remarks>Defaults to empty: no route is published in this zone (it is still used for TXT records, e.g. ACME DNS-01).</remarks>
    public List<string> Patterns { get; set; } = [];
}
