using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>Certificates from a real ACME CA (Debian's pebble) served on the edge's HTTPS port, verified by curl.</summary>
public class AcmeIssuanceTests
{
    private static readonly TimeSpan IssueWait = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("http-01")]
    [InlineData("tls-alpn-01")]
    public async Task A_configured_name_gets_a_certificate_that_curl_verifies_against_pebbles_root(string challenge)
    {
        const string Name = "site.example.test";
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name)], acme =>
        {
            acme.Names = [Name];
            acme.Challenges = [challenge];
        });
        await bed.Harness.StartOriginAsync(hostnames: [Name]);

        var status = await bed.WaitForCertificateAsync(Name, IssueWait);
        Assert.Contains("Pebble Intermediate CA", status.Issuer, StringComparison.Ordinal);
        Assert.Null(status.LastError);
        Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Name == "AcmeAuthorized" && e.Message.Contains(challenge, StringComparison.Ordinal));

        var root = await bed.Pebble!.WriteRootAsync();
        var result = await bed.CurlAsync(Name, root);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);
        Assert.Contains(bed.Measurements(), m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags["result"] == "issued");
        bed.ObserveGauges();
        var expiry = Assert.Single(bed.Measurements(), m => m.Instrument == "tunnel.edge.acme.certificate.expiry");
        Assert.Equal(Name, expiry.Tags["tunnel.certificate.names"]);
        var days = double.Parse(expiry.Tags["value"]!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(days, (status.NotAfter!.Value - DateTimeOffset.UtcNow).TotalDays - 1, (status.NotAfter.Value - DateTimeOffset.UtcNow).TotalDays + 1);

        // The status page shows the certificate and its issuer.
        var page = await Cli.RunAsync("curl", ["-sS", "--fail", $"http://127.0.0.1:{bed.Harness.Edge.AdminEndPoint!.Port}/"], TimeSpan.FromSeconds(10));
        Assert.Contains(Name, page.Stdout, StringComparison.Ordinal);
        Assert.Contains("Pebble Intermediate CA", page.Stdout, StringComparison.Ordinal);
    }
}
