using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>
/// DNS-01 for a wildcard certificate through the edge's own RFC 2136 path: the edge's DNS publisher writes the
/// <c>_acme-challenge</c> TXT records into a real BIND named with TSIG-signed updates, and pebble, resolving
/// through that named, reads them.
/// </summary>
public class AcmeDnsChallengeTests(ITestOutputHelper output)
{
    private const string Wildcard = "*.wild.example.test";
    private const string Visited = "a.wild.example.test";
    private const string Challenge = "_acme-challenge.wild.example.test";

    [Fact]
    public async Task A_wildcard_certificate_is_issued_through_DNS_01_in_named_by_signed_updates_and_its_TXT_records_are_removed_after()
    {
        await using var bed = await AcmeTestBed.StartAsync([], acme => acme.Names = [Wildcard], dnsZone: _ => { });
        using var dump = new WriteOnDispose(output, () => bed.Named.Log);
        await bed.Harness.StartOriginAsync(hostnames: [Visited]);

        var status = await bed.WaitForCertificateAsync(Wildcard, TimeSpan.FromSeconds(30));
        Assert.Equal([Wildcard], status.Names);
        Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Name == "AcmeAuthorized" && e.Message.Contains("dns-01", StringComparison.Ordinal));

        var result = await bed.CurlAsync(Visited, await bed.Pebble!.WriteRootAsync());
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);

        // named applied one signed update adding the challenge's TXT record and one deleting it, and holds none now.
        var signed = $"/key {bed.Named.KeyName}: updating zone '{bed.Named.Zone}/IN': ";
        Assert.Equal(1, bed.Named.CountInLog(signed + $"adding an RR at '{Challenge}' TXT"));
        await Wait.UntilAsync(() => bed.Named.CountInLog(signed + $"deleting an RR at {Challenge} TXT") == 1, TimeSpan.FromSeconds(10), "named deletes the challenge's TXT record");
        Assert.Empty(await bed.Named.DigAsync(Challenge, "TXT"));
        Assert.Equal(0, bed.Named.CountInLog("denied"));
    }

    [Fact]
    public async Task With_named_down_a_wildcard_renewal_fails_naming_the_DNS_server_and_the_issued_certificate_keeps_serving()
    {
        // Pebble issues 20-second certificates: the renewal, at about two thirds, finds named stopped.
        await using var bed = await AcmeTestBed.StartAsync([], acme => acme.Names = [Wildcard], edge => edge.Dns.UpdateTimeout = TimeSpan.FromSeconds(1),
            validitySeconds: 20, dnsZone: _ => { });
        using var dump = new WriteOnDispose(output, () => bed.Named.Log);
        await bed.Harness.StartOriginAsync(hostnames: [Visited]);
        var issued = await bed.WaitForCertificateAsync(Wildcard, TimeSpan.FromSeconds(30));
        await bed.Named.StopAsync();

        await Wait.UntilAsync(() => bed.Measurements().Any(m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags.GetValueOrDefault("reason") == "dns_unreachable"),
            TimeSpan.FromSeconds(30), "the renewal fails with reason dns_unreachable; status: " + string.Join("; ", bed.Certificates.Status()));
        var status = Assert.Single(bed.Certificates.Status());
        output.WriteLine(status.LastError);
        Assert.Contains("dns_unreachable", status.LastError, StringComparison.Ordinal);
        Assert.Contains(bed.Named.Server, status.LastError, StringComparison.Ordinal);
        Assert.Equal(issued.NotAfter, status.NotAfter);
        var logged = bed.Harness.EdgeLogs.Entries.First(e => e.EventId.Id == 424);
        Assert.Contains(bed.Named.Server, logged.Message, StringComparison.Ordinal);
        Assert.Contains("keeps serving", logged.Message, StringComparison.Ordinal);

        // The certificate issued before still serves, and curl still verifies it against pebble's root.
        var result = await bed.CurlAsync(Visited, await bed.Pebble!.WriteRootAsync());
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);
        Assert.True(DateTimeOffset.UtcNow < issued.NotAfter, "the check ran while the first certificate was still valid");
    }

    [Fact]
    public async Task A_wildcard_without_a_DNS_publisher_is_refused_and_says_why()
    {
        const string NoDns = "*.nodns.example.test";
        await using var bed = await AcmeTestBed.StartAsync([], acme => acme.Names = [NoDns]);

        await Wait.UntilAsync(() => bed.Certificates.Status().Single().LastError is not null, TimeSpan.FromSeconds(30), "the order fails");
        Assert.Contains("no_dns_publisher", bed.Certificates.Status().Single().LastError, StringComparison.Ordinal);
        await Wait.UntilAsync(() => bed.Measurements().Any(m => m.Tags.GetValueOrDefault("reason") == "no_dns_publisher"), TimeSpan.FromSeconds(10), "the failure is counted with its reason");
    }
}
