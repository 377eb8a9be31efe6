using System.Diagnostics.Metrics;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Dns;

/// <summary>
/// The DNS publisher's instrument on the edge's meter (<c>Tunnel.Edge</c>): <c>tunnel.edge.dns.updates</c>,
/// each update message sent (and each one that could not be), by <c>operation</c> (publish, remove,
/// txt_set, txt_remove), <c>result</c> (success, failure) and <c>reason</c> (the outcome: published,
/// present, replaced, removed, not_present, txt_set, txt_removed; or the cause: the RCODE or TSIG error
/// in lower case such as refused, notauth, yxrrset, badsig, badkey; foreign_record; unreachable).
/// </summary>
internal sealed class DnsMetrics
{
    private readonly Counter<long> _updates;

    /// <summary>Creates the instrument.</summary>
    public DnsMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(EdgeMetrics.MeterName);
        _updates = meter.CreateCounter<long>("tunnel.edge.dns.updates", "{update}", "RFC 2136 updates the edge sent to its DNS zones, by operation, result (success, failure) and reason.");
    }

    /// <summary>Counts one update's outcome.</summary>
    public void Update(string operation, DnsUpdateResult result) =>
        _updates.Add(1,
            new KeyValuePair<string, object?>("operation", operation),
            new KeyValuePair<string, object?>("result", result.Succeeded ? "success" : "failure"),
            new KeyValuePair<string, object?>("reason", result.Reason));
}
