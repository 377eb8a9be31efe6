using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Tunnels;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Protocol.Credentials;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Tenants against each other on one edge: a real edge, real origins (HelloOrigin with the plugin) each
/// with its own credential, real TLS. One credential cannot take every tunnel place, a registration
/// cannot name unbounded hostnames, and a name claimed exclusively is refused to every other credential,
/// with the reason at the refused origin, on the status page and from <c>tunnel-edge issue</c>.
/// </summary>
public class TenantTests(ITestOutputHelper output)
{
    private const string ClaimedName = "app.tenant.test";
    private const string Wildcard = "*.tenant.test";
    private static readonly TimeSpan RegistrationWait = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_credential_over_its_connection_cap_is_refused_with_the_reason_at_the_origin_while_another_credential_registers()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.MaxTunnelConnectionsPerCredential = 2);

        // Four slots on one credential against a cap of two: two register, two are refused.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var greedy = await harness.StartOriginAsync(configureTunnel: t => t.HaConnections = 4, waitForConnections: false);
        await Wait.UntilAsync(() => Rejections(greedy, "credential_limit").Length >= 2, RegistrationWait, "the greedy origin logs two credential_limit refusals");
        output.WriteLine($"figure: both refusals logged at the origin {clock.ElapsedMilliseconds} ms after it started");
        var refusal = Rejections(greedy, "credential_limit")[0];
        output.WriteLine(refusal);
        Assert.Contains("holds 2 tunnel connections", refusal, StringComparison.Ordinal);
        Assert.Contains("MaxTunnelConnectionsPerCredential", refusal, StringComparison.Ordinal);

        // Another tenant still gets its places.
        var other = await harness.StartOriginAsync(hostnames: ["other.test"], configureTunnel: t => t.HaConnections = 2, waitForConnections: false);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.Hostnames.Contains("other.test")) == 2, RegistrationWait, "the other credential's 2 connections register");
        output.WriteLine($"figure: the other credential's 2 connections registered {clock.ElapsedMilliseconds} ms after the first origin started");
        Assert.Empty(Rejections(other, ""));

        var byCredential = harness.Edge.Routes.Connections().GroupBy(c => c.CredentialId).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal([2, 2], byCredential.Values.Order());
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "CredentialConnectionLimitReached");
        var metrics = await CurlAsync(harness, "/metrics");
        Assert.True(Metric(metrics, "tunnel_edge_registrations_total{tunnel_registration_result=\"rejected\",tunnel_rejection_reason=\"credential_limit\"}") >= 2, metrics);
        Assert.Equal(2, Metric(metrics, "tunnel_edge_credential_tunnels_max"));

        // The places come back when the origin leaves: none is held for a closed connection.
        var greedyId = harness.Edge.Routes.Connections().First(c => c.Hostnames.Contains(TunnelHarness.Hostname)).CredentialId;
        var policy = harness.Edge.Services.GetRequiredService<RegistrationPolicy>();
        Assert.Equal(2, policy.ConnectionsOf(greedyId));
        await greedy.App.StopAsync();
        await Wait.UntilAsync(() => policy.ConnectionsOf(greedyId) == 0, RegistrationWait, "the stopped origin's places are given back");
    }

    [Fact]
    public async Task A_registration_naming_more_hostnames_than_the_cap_is_refused()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.MaxHostnamesPerRegistration = 2);
        string[] names = ["a.many.test", "b.many.test", "c.many.test"];
        var origin = await harness.StartOriginAsync(hostnames: names, configureTunnel: t => t.HaConnections = 1, waitForConnections: false);

        await Wait.UntilAsync(() => Rejections(origin, "credential_limit").Length >= 1, RegistrationWait, "the origin logs the credential_limit refusal");
        var refusal = Rejections(origin, "credential_limit")[0];
        output.WriteLine(refusal);
        Assert.Contains("names 3 hostnames", refusal, StringComparison.Ordinal);
        Assert.Contains("at most 2 per registration", refusal, StringComparison.Ordinal);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "CredentialHostnameLimitReached");
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
    }

    [Fact]
    public async Task An_exclusive_claim_refuses_the_name_to_a_wildcard_credential_and_the_status_page_warns_of_the_overlap()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var (claimantCertificate, claimantKey, claimantId) = IssueOrigin(harness.Pki, exclusive: true, ClaimedName);
        await harness.StartOriginAsync(hostnames: [ClaimedName], configureTunnel: t => UseCertificate(t, claimantCertificate, claimantKey, 2), waitForConnections: false,
            configureApp: app => app.MapGet("/who", () => "claimant\n"));
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count == 2, RegistrationWait, "the claimant's 2 connections register");

        var (wildcardCertificate, wildcardKey, wildcardId) = IssueOrigin(harness.Pki, exclusive: false, Wildcard);
        var intruder = await harness.StartOriginAsync(hostnames: [ClaimedName], configureTunnel: t => UseCertificate(t, wildcardCertificate, wildcardKey, 1), waitForConnections: false,
            configureApp: app => app.MapGet("/who", () => "wildcard\n"));

        await Wait.UntilAsync(() => Rejections(intruder, "hostname_claimed").Length >= 1, RegistrationWait, "the wildcard origin logs the hostname_claimed refusal");
        var refusal = Rejections(intruder, "hostname_claimed")[0];
        output.WriteLine(refusal);
        Assert.Contains($"'{ClaimedName}' is claimed exclusively by credential {claimantId}", refusal, StringComparison.Ordinal);
        Assert.Contains($"the credential {wildcardId} covers it by a wildcard", refusal, StringComparison.Ordinal);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "HostnameClaimRefused");
        Assert.All(harness.Edge.Routes.Connections(), c => Assert.Equal(claimantId, c.CredentialId));

        var served = await Cli.RunAsync("curl", ["-s", .. harness.CurlResolve(ClaimedName), harness.VisitorUrl("/who", ClaimedName)], CommandTimeout);
        Assert.Equal("claimant\n", served.Stdout);

        var page = await CurlAsync(harness, "/");
        output.WriteLine(page);
        Assert.Contains("<h2>Credential overlaps</h2>", page, StringComparison.Ordinal);
        Assert.Contains($"{ClaimedName} (credential {claimantId}, exclusive) is also covered by credential {wildcardId}&#39;s {Wildcard}", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_claimant_arriving_moves_a_wildcard_credentials_connections_off_its_name()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.RevokedConnectionGrace = TimeSpan.FromMilliseconds(200));
        var (wildcardCertificate, wildcardKey, wildcardId) = IssueOrigin(harness.Pki, exclusive: false, Wildcard);
        var early = await harness.StartOriginAsync(hostnames: [ClaimedName], configureTunnel: t => UseCertificate(t, wildcardCertificate, wildcardKey, 1), waitForConnections: false);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count == 1, RegistrationWait, "the wildcard credential registers the name before any claim is known");

        var (claimantCertificate, claimantKey, claimantId) = IssueOrigin(harness.Pki, exclusive: true, ClaimedName);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await harness.StartOriginAsync(hostnames: [ClaimedName], configureTunnel: t => UseCertificate(t, claimantCertificate, claimantKey, 1), waitForConnections: false);

        await Wait.UntilAsync(() => harness.Edge.Routes.Connections() is { Count: 1 } only && only.First().CredentialId == claimantId, RegistrationWait, "only the claimant's connection serves the name");
        output.WriteLine($"figure: the wildcard credential's connection gone {clock.ElapsedMilliseconds} ms after the claimant started (grace 200 ms)");
        await Wait.UntilAsync(() => Rejections(early, "hostname_claimed").Length >= 1, RegistrationWait, "the moved origin's redial is refused with hostname_claimed");
        var withdrawn = harness.EdgeLogs.Entries.First(e => e.EventId.Name == "TunnelCredentialWithdrawn");
        output.WriteLine(withdrawn.Message);
        Assert.Contains($"claimed exclusively by credential {claimantId}; credential {wildcardId} may no longer serve it", withdrawn.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_claim_in_the_registry_holds_before_its_credential_connects_and_no_wildcard_route_serves_the_claimed_name()
    {
        var registry = Path.Combine(Directory.CreateTempSubdirectory("tunnel-tenants-").FullName, EdgeDirectory.RegistryFile);
        var now = DateTimeOffset.UtcNow;
        CredentialRegistry.Add(registry, new IssuedCredential("0A1B2C3D", "owner", [ClaimedName], "CN=Test Edge CA", now, now, now.AddDays(1), Exclusive: true));
        await using var harness = await TunnelHarness.StartAsync(o => o.CredentialRegistryPath = registry);
        var (wildcardCertificate, wildcardKey, _) = IssueOrigin(harness.Pki, exclusive: false, Wildcard);

        var exact = await harness.StartOriginAsync(hostnames: [ClaimedName], configureTunnel: t => UseCertificate(t, wildcardCertificate, wildcardKey, 1), waitForConnections: false);
        await Wait.UntilAsync(() => Rejections(exact, "hostname_claimed").Length >= 1, RegistrationWait, "the wildcard credential's registration of the claimed name is refused");
        Assert.Contains($"'{ClaimedName}' is claimed exclusively by credential 0A1B2C3D (owner)", Rejections(exact, "hostname_claimed")[0], StringComparison.Ordinal);

        // The wildcard itself registers, and serves the names nobody claims, but not the claimed one.
        await harness.StartOriginAsync(hostnames: [Wildcard], configureTunnel: t => UseCertificate(t, wildcardCertificate, wildcardKey, 1), waitForConnections: false);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count == 1, RegistrationWait, "the wildcard route registers");
        Assert.Equal("200", await StatusAsync(harness, "other.tenant.test"));
        Assert.Equal("502", await StatusAsync(harness, ClaimedName));
        Directory.Delete(Path.GetDirectoryName(registry)!, recursive: true);
    }

    [Fact]
    public async Task Issue_warns_of_a_name_covered_by_another_credentials_wildcard_and_of_two_credentials_for_one_name()
    {
        var directory = Directory.CreateTempSubdirectory("tunnel-tenants-").FullName;
        try
        {
            await IssueAsync("init", "--dir", directory);
            var wildcard = await IssueAsync("issue", "--dir", directory, "--domain", Wildcard, "--label", "platform", "--out", Path.Combine(directory, "platform.json"));
            Assert.DoesNotContain("warning", wildcard.Stderr, StringComparison.Ordinal);
            var wildcardId = TunnelCredential.Load(Path.Combine(directory, "platform.json")).Id;

            var exact = await IssueAsync("issue", "--dir", directory, "--domain", ClaimedName, "--label", "shop", "--out", Path.Combine(directory, "shop.json"));
            output.WriteLine(exact.Stderr);
            var exactId = TunnelCredential.Load(Path.Combine(directory, "shop.json")).Id;
            Assert.Contains($"warning: {ClaimedName} (credential {exactId} (shop)) is also covered by credential {wildcardId} (platform)'s {Wildcard}", exact.Stderr, StringComparison.Ordinal);
            Assert.Contains("their connections pool", exact.Stderr, StringComparison.Ordinal);

            var claim = await IssueAsync("issue", "--dir", directory, "--domain", ClaimedName, "--label", "shop-owner", "--exclusive", "--out", Path.Combine(directory, "owner.json"));
            output.WriteLine(claim.Stdout + claim.Stderr);
            var claimId = TunnelCredential.Load(Path.Combine(directory, "owner.json")).Id;
            Assert.Contains("claimed exclusively", claim.Stdout, StringComparison.Ordinal);
            Assert.Contains($"warning: {ClaimedName} is claimed exclusively by credential {claimId} (shop-owner); credential {exactId} (shop) covers it too but is refused when it registers it.", claim.Stderr, StringComparison.Ordinal);
            Assert.Contains($"warning: {ClaimedName} (credential {claimId} (shop-owner), exclusive) is also covered by credential {wildcardId} (platform)'s {Wildcard}, which is refused", claim.Stderr, StringComparison.Ordinal);
            Assert.Contains(CredentialRegistry.Load(Path.Combine(directory, EdgeDirectory.RegistryFile)), c => c.Id == claimId && c.Exclusive);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private async Task<Cli.Result> IssueAsync(params string[] arguments)
    {
        var result = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), .. arguments], CommandTimeout);
        Assert.True(result.ExitCode == 0, $"tunnel-edge {string.Join(' ', arguments)}: {Cli.Describe(result)}");
        return result;
    }

    private static (string CertificatePath, string KeyPath, string Id) IssueOrigin(TestPki pki, bool exclusive, params string[] domains)
    {
        using var certificate = CertificateIssuer.IssueOriginCertificate(pki.Ca, domains, TimeSpan.FromDays(1), exclusive);
        var prefix = Path.Combine(pki.Directory, "tenant-" + Guid.NewGuid().ToString("N")[..8]);
        CertificateIssuer.WritePem(certificate, prefix + ".pem", prefix + ".key");
        return (prefix + ".pem", prefix + ".key", TunnelCredential.IdOf(certificate));
    }

    private static void UseCertificate(Tunnel.Transport.TunnelOptions tunnel, string certificatePath, string keyPath, int connections)
    {
        tunnel.CertificatePath = certificatePath;
        tunnel.CertificateKeyPath = keyPath;
        tunnel.HaConnections = connections;
    }

    private static string[] Rejections(TunnelHarness.Origin origin, string code) =>
        [.. origin.Logs.Entries.Where(e => e.EventId.Name == "RegistrationRejected" && e.Message.Contains(code, StringComparison.Ordinal)).Select(e => e.Message)];

    private static async Task<string> StatusAsync(TunnelHarness harness, string host) =>
        (await Cli.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", .. harness.CurlResolve(host), harness.VisitorUrl("/", host)], CommandTimeout)).Stdout;

    private static async Task<string> CurlAsync(TunnelHarness harness, string path) =>
        (await Cli.RunAsync("curl", ["-s", $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}{path}"], CommandTimeout)).Stdout;

    private static double Metric(string text, string series)
    {
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? -1 : double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
    }
}
