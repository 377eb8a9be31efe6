using System.Net;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>What a CA that is down, or refuses a challenge, leaves working, and how the edge says why.</summary>
public class AcmeFailureTests
{
    private static readonly TimeSpan FailureWait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task With_the_CA_down_the_fallback_certificate_keeps_serving_and_the_edge_says_why()
    {
        const string Name = "down.example.test";
        using var sites = new TestPki();
        var fallback = IssueSite(sites, "fallback", "*.example.test");
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.HostRecord(Name)], acme => acme.Names = [Name], edge => edge.Certificates = [fallback], pebbleDown: true);
        await bed.Harness.StartOriginAsync(hostnames: [Name]);

        await Wait.UntilAsync(() => bed.Measurements().Any(m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags["result"] == "failed" && m.Tags["reason"] == "connection_refused"),
            FailureWait, "the failed order is counted with reason connection_refused");
        var status = Assert.Single(bed.Certificates.Status());
        Assert.Null(status.NotAfter);
        Assert.Contains("connection_refused", status.LastError, StringComparison.Ordinal);
        await Wait.UntilAsync(() => bed.Harness.EdgeLogs.Entries.Any(e => e.EventId.Id == 424), FailureWait, "the failure is logged");
        var logged = bed.Harness.EdgeLogs.Entries.First(e => e.EventId.Id == 424);
        Assert.Contains("Cannot reach the CA", logged.Message, StringComparison.Ordinal);
        Assert.Contains("fallback certificate serves", logged.Message, StringComparison.Ordinal);

        var result = await bed.CurlAsync(Name, sites.CaPath);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_challenge_the_CA_cannot_validate_is_logged_with_its_problem_detail_and_counted()
    {
        // The name resolves to an address the edge does not listen on: pebble's HTTP-01 connection is refused.
        const string Name = "elsewhere.example.test";
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.HostRecord(Name, "127.0.0.2")], acme =>
        {
            acme.Names = [Name];
            acme.Challenges = ["http-01"];
        });

        await Wait.UntilAsync(() => bed.Measurements().Any(m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags["result"] == "failed"),
            FailureWait, "the failed order is counted");
        var failure = bed.Measurements().First(m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags["result"] == "failed");
        Assert.Equal("connection", failure.Tags["reason"]);
        await Wait.UntilAsync(() => bed.Harness.EdgeLogs.Entries.Any(e => e.EventId.Id == 424), FailureWait, "the failure is logged");
        var logged = bed.Harness.EdgeLogs.Entries.First(e => e.EventId.Id == 424);
        Assert.Contains("urn:ietf:params:acme:error:connection", logged.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.2", logged.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.2", Assert.Single(bed.Certificates.Status()).LastError, StringComparison.Ordinal);
    }

    internal static VisitorCertificateFile IssueSite(TestPki pki, string file, params string[] hostnames)
    {
        using var certificate = CertificateIssuer.IssueSiteCertificate(pki.Ca, hostnames, TimeSpan.FromDays(1));
        var prefix = Path.Combine(pki.Directory, file);
        CertificateIssuer.WritePem(certificate, prefix + ".pem", prefix + ".key");
        return new VisitorCertificateFile { CertificatePath = prefix + ".pem", KeyPath = prefix + ".key" };
    }
}
