using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>DNS-01 for a wildcard certificate, the TXT records published in a real DNS server pebble queries.</summary>
public class AcmeDnsChallengeTests
{
    [Fact]
    public async Task A_wildcard_certificate_is_issued_through_DNS_01_and_its_TXT_records_are_removed_after()
    {
        const string Wildcard = "*.wild.example.test";
        const string Visited = "a.wild.example.test";
        await using var zone = await PebbleChallengeServer.StartAsync();
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.HostRecord(Visited)], acme =>
        {
            acme.Names = [Wildcard];
            acme.DnsChallengeRecords = zone;
        }, pebbleDns: zone.DnsEndPoint);
        await bed.Harness.StartOriginAsync(hostnames: [Visited]);

        var status = await bed.WaitForCertificateAsync(Wildcard, TimeSpan.FromSeconds(30));
        Assert.Equal([Wildcard], status.Names);
        var published = Assert.Single(zone.Published);
        Assert.Equal("_acme-challenge.wild.example.test", published.Name);
        Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Name == "AcmeAuthorized" && e.Message.Contains("dns-01", StringComparison.Ordinal));

        var result = await bed.CurlAsync(Visited, await bed.Pebble!.WriteRootAsync());
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);

        // The answer is withdrawn once the authorization is decided.
        var txt = await Cli.RunAsync("dig", ["+short", "-p", zone.DnsEndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "@127.0.0.1", "TXT", published.Name], TimeSpan.FromSeconds(10));
        Assert.Equal(0, txt.ExitCode);
        Assert.DoesNotContain(published.Value, txt.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wildcard_without_a_DNS_publisher_is_refused_and_says_why()
    {
        const string Wildcard = "*.nodns.example.test";
        await using var bed = await AcmeTestBed.StartAsync([], acme => acme.Names = [Wildcard]);

        await Wait.UntilAsync(() => bed.Certificates.Status().Single().LastError is not null, TimeSpan.FromSeconds(30), "the order fails");
        Assert.Contains("no_dns_publisher", bed.Certificates.Status().Single().LastError, StringComparison.Ordinal);
        await Wait.UntilAsync(() => bed.Measurements().Any(m => m.Tags.GetValueOrDefault("reason") == "no_dns_publisher"), TimeSpan.FromSeconds(10), "the failure is counted with its reason");
    }
}
