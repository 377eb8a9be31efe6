using System.Net.Sockets;
using System.Security.Cryptography;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;
using ARSoft.Tools.Net.Dns.DynamicUpdate;

namespace Tunnel.Edge.Dns;

/// <summary>The outcome of one update: whether it did what was asked, a short reason for the metric and a detail for people.</summary>
/// <param name="Succeeded">Whether the zone now holds what was asked.</param>
/// <param name="Reason">The outcome or cause in lower case (published, present, refused, badsig, unreachable ...).</param>
/// <param name="Detail">What happened, for the log and the status page.</param>
internal sealed record DnsUpdateResult(bool Succeeded, string Reason, string Detail)
{
    /// <summary>Whether the server never answered (nothing is known of the zone).</summary>
    public bool Unreachable => Reason == "unreachable";
}

/// <summary>
/// Sends RFC 2136 updates signed with TSIG (RFC 8945) to a zone's primary, through ARSoft.Tools.Net.
/// Every record the edge creates gets an ownership marker beside it, a TXT record at
/// <c>_tunnel-owner.NAME</c> holding the owner value: creating requires that neither the name nor the
/// marker exist (so nothing the operator wrote is overwritten), and changing or deleting requires the
/// marker with this owner's value (so nothing another writer made is touched). Each check is a
/// prerequisite of the same message, so the server applies it atomically.
/// </summary>
internal sealed class DnsUpdateClient
{
    private const string MarkerLabel = "_tunnel-owner";
    private const string WildcardMarkerLabel = "_tunnel-owner-wildcard";

    // The window of clock difference the server allows for the signature (RFC 8945's recommended 300 s).
    private static readonly TimeSpan Fudge = TimeSpan.FromMinutes(5);

    private readonly string _owner;
    private readonly int _ttl;
    private readonly int _timeoutMilliseconds;
    private readonly TimeProvider _time;

    /// <summary>Creates a client writing markers with <paramref name="owner"/> and records with <paramref name="ttl"/>.</summary>
    public DnsUpdateClient(string owner, int ttl, TimeSpan timeout, TimeProvider time)
    {
        _owner = owner;
        _ttl = ttl;
        _timeoutMilliseconds = (int)Math.Clamp(timeout.TotalMilliseconds, 100, int.MaxValue);
        _time = time;
    }

    /// <summary>
    /// Creates <paramref name="records"/> (one name) with their marker when the name is free; when it is
    /// taken, finds out whether by these very records of this owner (<c>present</c>), by this owner's
    /// older values (replaced), or by someone else (<c>foreign_record</c>, nothing written).
    /// </summary>
    public async Task<DnsUpdateResult> PublishAsync(DnsZone zone, string hostname, DnsRecordBase[] records, CancellationToken cancellationToken)
    {
        var name = DomainName.Parse(hostname);
        var marker = MarkerOf(hostname);
        var create = NewMessage(zone);
        if (records[0] is CNameRecord)
        {
            // A CNAME may not share its name with anything else.
            create.Prequisites.Add(new NameIsNotInUsePrequisite(name));
        }
        else
        {
            create.Prequisites.Add(new RecordNotExistsPrequisite(name, RecordType.A));
            create.Prequisites.Add(new RecordNotExistsPrequisite(name, RecordType.Aaaa));
            create.Prequisites.Add(new RecordNotExistsPrequisite(name, RecordType.CName));
        }

        create.Prequisites.Add(new NameIsNotInUsePrequisite(marker));
        create.Updates.AddRange(records.Select(r => new AddRecordUpdate(r)));
        create.Updates.Add(new AddRecordUpdate(Marker(marker)));
        var created = await SendAsync(zone, create, "published", cancellationToken).ConfigureAwait(false);
        if (created.Succeeded || created.Reason is not ("yxdomain" or "yxrrset"))
        {
            return created;
        }

        // Taken: by exactly these records of ours?
        var check = NewMessage(zone);
        check.Prequisites.Add(new RecordExistsValueDependantPrequisite(Marker(marker)));
        check.Prequisites.AddRange(records.Select(r => new RecordExistsValueDependantPrequisite(r)));
        var same = await SendAsync(zone, check, "present", cancellationToken).ConfigureAwait(false);
        if (same.Succeeded || same.Reason is not ("nxrrset" or "nxdomain"))
        {
            return same;
        }

        // Ours with other values (the target or addresses changed): replace them, still only under our marker.
        var replace = NewMessage(zone);
        replace.Prequisites.Add(new RecordExistsValueDependantPrequisite(Marker(marker)));
        foreach (var type in new[] { RecordType.CName, RecordType.A, RecordType.Aaaa })
        {
            replace.Updates.Add(new DeleteAllRecordsUpdate(name, type));
        }

        replace.Updates.AddRange(records.Select(r => new AddRecordUpdate(r)));
        var replaced = await SendAsync(zone, replace, "replaced", cancellationToken).ConfigureAwait(false);
        return replaced.Reason is "nxrrset" or "nxdomain"
            ? new DnsUpdateResult(false, "foreign_record", $"{created.Detail}: the name has records without this edge's marker ({MarkerLabel} TXT \"{_owner}\")")
            : replaced;
    }

    /// <summary>Deletes <paramref name="records"/> and their marker, only while both are still exactly as this owner wrote them.</summary>
    public async Task<DnsUpdateResult> RemoveAsync(DnsZone zone, string hostname, DnsRecordBase[] records, CancellationToken cancellationToken)
    {
        var name = DomainName.Parse(hostname);
        var marker = MarkerOf(hostname);
        var remove = NewMessage(zone);
        remove.Prequisites.Add(new RecordExistsValueDependantPrequisite(Marker(marker)));
        remove.Prequisites.AddRange(records.Select(r => new RecordExistsValueDependantPrequisite(r)));
        foreach (var type in records.Select(r => r.RecordType).Distinct())
        {
            remove.Updates.Add(new DeleteAllRecordsUpdate(name, type));
        }

        remove.Updates.Add(new DeleteAllRecordsUpdate(marker, RecordType.Txt));
        var removed = await SendAsync(zone, remove, "removed", cancellationToken).ConfigureAwait(false);
        return removed.Reason is "nxrrset" or "nxdomain"
            ? new DnsUpdateResult(true, "not_present", $"{removed.Detail}: gone already, or changed by someone else")
            : removed;
    }

    /// <summary>Adds one TXT record (beside any others of the name).</summary>
    public Task<DnsUpdateResult> AddTxtAsync(DnsZone zone, string name, string value, CancellationToken cancellationToken)
    {
        var message = NewMessage(zone);
        message.Updates.Add(new AddRecordUpdate(new TxtRecord(DomainName.Parse(name), _ttl, value)));
        return SendAsync(zone, message, "txt_set", cancellationToken);
    }

    /// <summary>Deletes one TXT record (the others of the name stay).</summary>
    public Task<DnsUpdateResult> DeleteTxtAsync(DnsZone zone, string name, string value, CancellationToken cancellationToken)
    {
        var message = NewMessage(zone);
        message.Updates.Add(new DeleteRecordUpdate(new TxtRecord(DomainName.Parse(name), 0, value)));
        return SendAsync(zone, message, "txt_removed", cancellationToken);
    }

    /// <summary>The marker's name for a hostname: <c>_tunnel-owner.NAME</c>, or <c>_tunnel-owner-wildcard.REST</c> for <c>*.REST</c>.</summary>
    public static DomainName MarkerOf(string hostname) =>
        DomainName.Parse(hostname.StartsWith("*.", StringComparison.Ordinal) ? $"{WildcardMarkerLabel}.{hostname[2..]}" : $"{MarkerLabel}.{hostname}");

    private TxtRecord Marker(DomainName marker) => new(marker, _ttl, _owner);

    private static DnsUpdateMessage NewMessage(DnsZone zone) =>
        new() { ZoneName = zone.DomainName, TransactionID = (ushort)RandomNumberGenerator.GetInt32(1, 0xFFFF) };

    private async Task<DnsUpdateResult> SendAsync(DnsZone zone, DnsUpdateMessage message, string success, CancellationToken cancellationToken)
    {
        message.TSigOptions = new TSigRecord(DomainName.Parse(zone.KeyName), zone.Algorithm, _time.GetUtcNow().UtcDateTime, Fudge, message.TransactionID, ReturnCode.NoError, null, zone.Secret);
        using var client = new DnsClient([zone.Server.Address], [new UdpClientTransport(zone.Server.Port), new TcpClientTransport(zone.Server.Port)], true, _timeoutMilliseconds);
        DnsUpdateMessage? response;
        try
        {
            response = await client.SendUpdateAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            return new DnsUpdateResult(false, "unreachable", $"{zone.Server}: {ex.Message}");
        }

        if (response is null)
        {
            return new DnsUpdateResult(false, "unreachable", $"no answer from {zone.Server}: nothing listens there, or the packets are dropped (waited at most {_timeoutMilliseconds / 1000.0:0.#} s)");
        }

        return Classify(zone, response, success);
    }

    private static DnsUpdateResult Classify(DnsZone zone, DnsUpdateMessage response, string success)
    {
        // A TSIG failure comes as NOTAUTH with the cause in the TSIG record's error field (RFC 8945 5.3).
        if (response.TSigOptions is { Error: not ReturnCode.NoError } tsig)
        {
            var cause = tsig.Error switch
            {
                ReturnCode.BadSig => "the signature does not verify: the secret differs from the server's",
                ReturnCode.BadKey => $"the server does not know the key '{zone.KeyName}' (or its algorithm)",
                ReturnCode.BadTime => "the clocks of the edge and the server differ by more than the allowed window",
                _ => "TSIG error",
            };
            return new DnsUpdateResult(false, RcodeName(tsig.Error), $"{RcodeName(response.ReturnCode).ToUpperInvariant()}/{RcodeName(tsig.Error).ToUpperInvariant()}: {cause}");
        }

        if (response.ReturnCode == ReturnCode.NoError)
        {
            return new DnsUpdateResult(true, success, "NOERROR");
        }

        var detail = response.ReturnCode switch
        {
            ReturnCode.Refused => "the server does not allow this key to update this name (allow-update / update-policy), or takes no updates for the zone",
            ReturnCode.NotAuthoritive => $"the server is not authoritative for {zone.Name}, or did not accept the signature",
            ReturnCode.NotZone => $"the name is not inside zone {zone.Name}",
            ReturnCode.YXDomain => "the name is in use",
            ReturnCode.YXRRSet => "a record of that type exists",
            ReturnCode.NXRRSet => "the records expected are not there",
            ReturnCode.NxDomain => "the name expected does not exist",
            ReturnCode.ServerFailure => "the server failed (its log says why)",
            ReturnCode.FormatError => "the server could not read the update",
            ReturnCode.NotImplemented => "the server does not implement dynamic updates",
            _ => "",
        };
        return new DnsUpdateResult(false, RcodeName(response.ReturnCode), $"{RcodeName(response.ReturnCode).ToUpperInvariant()}{(detail.Length > 0 ? ": " + detail : "")}");
    }

    private static string RcodeName(ReturnCode code) => code switch
    {
        ReturnCode.NoError => "noerror",
        ReturnCode.FormatError => "formerr",
        ReturnCode.ServerFailure => "servfail",
        ReturnCode.NxDomain => "nxdomain",
        ReturnCode.NotImplemented => "notimp",
        ReturnCode.Refused => "refused",
        ReturnCode.YXDomain => "yxdomain",
        ReturnCode.YXRRSet => "yxrrset",
        ReturnCode.NXRRSet => "nxrrset",
        ReturnCode.NotAuthoritive => "notauth",
        ReturnCode.NotZone => "notzone",
        ReturnCode.BadSig => "badsig",
        ReturnCode.BadKey => "badkey",
        ReturnCode.BadTime => "badtime",
        _ => "rcode_" + ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
