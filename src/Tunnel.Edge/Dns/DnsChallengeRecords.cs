using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.Edge.Dns;

/// <summary>
/// ACME's DNS-01 TXT records written through the publisher's TSIG-signed RFC 2136 path. An update the DNS
/// server refused or never answered fails the order with reason <c>dns_</c> and the publisher's cause
/// (<c>dns_unreachable</c>, <c>dns_refused</c>, <c>dns_badsig</c> ...) and its message, which names the zone
/// and the server; a name in no configured zone fails it with <c>dns_no_zone</c>.
/// </summary>
internal sealed class DnsChallengeRecords(DnsPublisher publisher) : IDnsChallengeRecords
{
    /// <inheritdoc />
    public Task SetTxtAsync(string name, string value, CancellationToken ct) => ChangeAsync(publisher.SetTxtAsync, name, value, ct);

    /// <inheritdoc />
    public Task RemoveTxtAsync(string name, string value, CancellationToken ct) => ChangeAsync(publisher.RemoveTxtAsync, name, value, ct);

    private static async Task ChangeAsync(Func<string, string, CancellationToken, Task> change, string name, string value, CancellationToken ct)
    {
        try
        {
            await change(name, value, ct).ConfigureAwait(false);
        }
        catch (DnsUpdateException ex)
        {
            throw new AcmeException("dns_" + (ex.Reason is { Length: > 0 } reason ? reason : "failed"), ex.Message, inner: ex);
        }
        catch (InvalidOperationException ex)
        {
            throw new AcmeException("dns_no_zone", ex.Message, inner: ex);
        }
    }
}
