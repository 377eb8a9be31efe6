using System.Net;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;
using Tunnel.EndToEnd.Tests.Infrastructure;

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
        var token = "acme-token-" + Guid.NewGuid().ToString("N");
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name)], acme => acme.Names = [Name], edge =>
        {
            edge.Certificates = [fallback];
            edge.AdminTokenPath = Path.Combine(sites.Directory, "admin.token");
            TestPki.WriteSecret(edge.AdminTokenPath, token + "\n");
        }, pebbleDown: true);
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

        // The operator sees it on the status page and in the admin API.
        var admin = $"http://127.0.0.1:{bed.Harness.Edge.AdminEndPoint!.Port}";
        var page = await Cli.RunAsync("curl", ["-sS", "--fail", admin + "/"], TimeSpan.FromSeconds(10));
        Assert.Contains("ACME certificates", page.Stdout, StringComparison.Ordinal);
        Assert.Contains(Name, page.Stdout, StringComparison.Ordinal);
        Assert.Contains("connection_refused", page.Stdout, StringComparison.Ordinal);
        var api = await Cli.RunAsync("curl", ["-sS", "--fail", "-H", "Authorization: Bearer " + token, admin + "/api/v1/certificates"], TimeSpan.FromSeconds(10));
        Assert.True(api.ExitCode == 0, Cli.Describe(api));
        using var json = System.Text.Json.JsonDocument.Parse(api.Stdout);
        var certificate = Assert.Single(json.RootElement.GetProperty("certificates").EnumerateArray());
        Assert.Equal(Name, certificate.GetProperty("names")[0].GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, certificate.GetProperty("issuer").ValueKind);
        Assert.Contains("connection_refused", certificate.GetProperty("lastError").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rate_limited_renewal_keeps_the_working_certificate_waits_the_CAs_Retry_After_and_then_renews()
    {
        const string Name = "limited.example.test";
        var retryAfter = TimeSpan.FromSeconds(4);
        RateLimitingCaProxy? ca = null;
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name)], acme => acme.Names = [Name], validitySeconds: 30,
            directoryInFront: async pebble => (ca = await RateLimitingCaProxy.StartAsync(pebble)).DirectoryUrl);
        await using var hop = ca!;
        await bed.Harness.StartOriginAsync(hostnames: [Name]);
        var first = await bed.WaitForCertificateAsync(Name, FailureWait);
        var root = await bed.Pebble!.WriteRootAsync();

        // The renewal (at about 18 s of 30: time enough, on a loaded machine, to see the refusal and the renewal before it expires) meets the CA's rate limit.
        hop.RetryAfter = retryAfter;
        await Wait.UntilAsync(() => bed.Certificates.Status().Single().LastError is not null, FailureWait, "the renewal is refused");
        var refusedAt = hop.Orders.Last(o => o.Refused).At;
        var status = bed.Certificates.Status().Single();
        Assert.Contains("rateLimited: too many certificates already issued", status.LastError, StringComparison.Ordinal);
        Assert.Equal(first.NotAfter, status.NotAfter);
        Assert.True(status.NextAttempt >= refusedAt + retryAfter - TimeSpan.FromMilliseconds(500), $"next attempt {status.NextAttempt:O} honours Retry-After after {refusedAt:O}");
        await Wait.UntilAsync(() => bed.Measurements().Any(m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags["result"] == "failed" && m.Tags["reason"] == "rateLimited"),
            FailureWait, "the failure is counted with reason rateLimited");
        await Wait.UntilAsync(() => bed.Harness.EdgeLogs.Entries.Any(e => e.EventId.Id == 424 && e.Message.Contains("rateLimited", StringComparison.Ordinal)), FailureWait, "the failure is logged");
        Assert.Contains("keeps serving", bed.Harness.EdgeLogs.Entries.First(e => e.EventId.Id == 424).Message, StringComparison.Ordinal);

        // What works keeps working: the certificate in place still verifies.
        var during = await bed.CurlAsync(Name, root);
        Assert.True(during.ExitCode == 0, Cli.Describe(during));

        // The limit lifts; the next order comes no sooner than Retry-After and renews.
        hop.RetryAfter = null;
        await Wait.UntilAsync(() => bed.Certificates.Status().Single() is { LastError: null } s && s.NotAfter > first.NotAfter, FailureWait, "the certificate is renewed once the limit lifts");
        var next = hop.Orders.First(o => o.At > refusedAt);
        Assert.True(next.At - refusedAt >= retryAfter - TimeSpan.FromMilliseconds(500), $"the next order came {(next.At - refusedAt).TotalSeconds:0.0} s after the refusal, Retry-After was {retryAfter.TotalSeconds} s");
        var after = await bed.CurlAsync(Name, root);
        Assert.True(after.ExitCode == 0, Cli.Describe(after));
    }

    [Fact]
    public async Task A_challenge_the_CA_cannot_validate_is_logged_with_its_problem_detail_and_counted()
    {
        // The name resolves to an address the edge does not listen on: pebble's HTTP-01 connection is refused.
        const string Name = "elsewhere.example.test";
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name, "127.0.0.2")], acme =>
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

    [Fact]
    public async Task An_account_the_CA_no_longer_knows_is_made_again_on_the_next_attempt()
    {
        const string Name = "forgotten.example.test";
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name)], acme => acme.Names = [Name],
            seedStorage: (storage, directory) => File.WriteAllText(Path.Combine(storage, "account.json"),
                $$"""{"directory":"{{directory}}","account":"{{directory.Replace("/dir", "/my-account/404", StringComparison.Ordinal)}}"}"""));

        await Wait.UntilAsync(() => bed.Certificates.Status().Single().NotAfter is not null, FailureWait,
            "a certificate is issued; edge log: " + string.Join("\n", bed.Harness.EdgeLogs.Entries.Where(e => e.Category.Contains("Acme", StringComparison.Ordinal)).Select(e => e.Message)));
        var failure = Assert.Single(bed.Measurements(), m => m.Instrument == "tunnel.edge.acme.orders" && m.Tags["result"] == "failed");
        Assert.Equal("accountDoesNotExist", failure.Tags["reason"]);
        Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Name == "AcmeAccountReady");
    }

    internal static VisitorCertificateFile IssueSite(TestPki pki, string file, params string[] hostnames)
    {
        using var certificate = CertificateIssuer.IssueSiteCertificate(pki.Ca, hostnames, TimeSpan.FromDays(1));
        var prefix = Path.Combine(pki.Directory, file);
        CertificateIssuer.WritePem(certificate, prefix + ".pem", prefix + ".key");
        return new VisitorCertificateFile { CertificatePath = prefix + ".pem", KeyPath = prefix + ".key" };
    }
}
