namespace Tunnel.Edge.Dns;

/// <summary>What the status page and the admin API show of one record the edge publishes or published.</summary>
/// <param name="Name">The hostname.</param>
/// <param name="Type">CNAME, A, AAAA, A+AAAA or TXT.</param>
/// <param name="Value">The target, addresses or text.</param>
/// <param name="Zone">The zone it is written in.</param>
/// <param name="State">pending, published, failed, foreign, peer (another edge of the cluster writes it), removal-pending, removed.</param>
/// <param name="LastResult">The last update's reason (published, present, refused, badsig, unreachable ...), empty before the first.</param>
/// <param name="LastError">Why the last update failed, or <c>null</c>.</param>
/// <param name="LastUpdate">When the last update was tried, or <c>null</c>.</param>
/// <param name="Writer">In a cluster the edge that writes it; this edge's name otherwise.</param>
internal sealed record DnsRecordStatus(string Name, string Type, string Value, string Zone, string State, string LastResult, string? LastError, DateTimeOffset? LastUpdate, string Writer);

/// <summary>The publisher's mutable state for one hostname (touched by its loop only; read as <see cref="Snapshot"/>).</summary>
internal sealed class DnsRecordEntry(string hostname, DnsZone zone, ARSoft.Tools.Net.Dns.DnsRecordBase[] records)
{
    public string Hostname { get; } = hostname;

    public DnsZone Zone { get; } = zone;

    public ARSoft.Tools.Net.Dns.DnsRecordBase[] Records { get; } = records;

    public string State { get; set; } = "pending";

    /// <summary>Whether this edge's records are (to its knowledge) in the zone: removal is its job.</summary>
    public bool Written { get; set; }

    public string LastResult { get; set; } = "";

    public string? LastError { get; set; }

    public DateTimeOffset? LastUpdate { get; set; }

    public string Writer { get; set; } = "";

    /// <summary>When the next try is due after a failure (or a recheck of a peer's lock).</summary>
    public DateTimeOffset NextAttempt { get; set; }

    public TimeSpan RetryDelay { get; set; }

    /// <summary>Since when no connector serves the name, or <c>null</c> while one does.</summary>
    public DateTimeOffset? UnservedSince { get; set; }

    public DnsRecordStatus Snapshot() => new(Hostname, TypeOf(Records), ValueOf(Records), Zone.Name, State, LastResult, LastError, LastUpdate, Writer);

    public static string TypeOf(ARSoft.Tools.Net.Dns.DnsRecordBase[] records) =>
        string.Join("+", records.Select(r => r.RecordType.ToString().ToUpperInvariant()).Distinct());

    public static string ValueOf(ARSoft.Tools.Net.Dns.DnsRecordBase[] records) =>
        string.Join(", ", records.Select(r => r switch
        {
            ARSoft.Tools.Net.Dns.CNameRecord cname => cname.CanonicalName.ToString(),
            ARSoft.Tools.Net.Dns.ARecord a => a.Address.ToString(),
            ARSoft.Tools.Net.Dns.AaaaRecord aaaa => aaaa.Address.ToString(),
            _ => r.ToString(),
        }));
}
