using System.Diagnostics;
using System.Text.Json;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>Revocation and the admin API against a real edge, real origins and curl.</summary>
public class CredentialLifecycleTests(ITestOutputHelper output)
{
    // The bound: a revoked credential's connections are gone within 5 s.
    private static readonly TimeSpan RevocationBound = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Revoking_in_the_file_closes_live_connections_within_5_s_and_refuses_redials_with_the_reason()
    {
        string revocations = "";
        await using var harness = await TunnelHarness.StartAsync(o => o.RevocationListPath = revocations = Path.Combine(Path.GetDirectoryName(o.CaCertificatePath)!, "revoked.json"));
        var origin = await harness.StartOriginAsync();
        var credential = harness.Edge.Routes.Connections().Select(c => c.CredentialId).Distinct().Single();

        // What tunnel-edge revoke --dir does, with the edge running.
        var stopwatch = Stopwatch.StartNew();
        RevocationList.Revoke(revocations, credential, "key leaked", DateTimeOffset.UtcNow);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().All(c => c.CredentialId != credential), TimeSpan.FromSeconds(15), "the revoked credential's connections are closed");
        output.WriteLine($"closed after {stopwatch.Elapsed.TotalSeconds:0.00} s");
        Assert.True(stopwatch.Elapsed <= RevocationBound, $"the connections closed after {stopwatch.Elapsed.TotalSeconds:0.00} s");
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "TunnelCredentialWithdrawn" && e.Message.Contains("key leaked", StringComparison.Ordinal));

        var (edgeLog, originLog) = await IdentityTests.RegistrationRefusedAsync(harness, origin, "credential_revoked");
        Assert.Contains("key leaked", edgeLog, StringComparison.Ordinal);
        Assert.Contains("key leaked", originLog, StringComparison.Ordinal);
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
    }

    [Fact]
    public async Task The_admin_API_refuses_without_the_token_and_from_outside_its_networks_and_serves_routes_drain_and_revoke()
    {
        var token = "test-token-" + Guid.NewGuid().ToString("N");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            var directory = Path.GetDirectoryName(o.CaCertificatePath)!;
            o.AdminTokenPath = Path.Combine(directory, "admin.token");
            TestPki.WriteSecret(o.AdminTokenPath, token + "\n");
            o.RevocationListPath = Path.Combine(directory, "revoked.json");
            o.AdminAllowedNetworks = ["127.0.0.1/32"];
        });
        var origin = await harness.StartOriginAsync();
        var api = $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/api/v1";

        Assert.Equal("401", (await CurlAsync(["-o", "/dev/null", "-w", "%{http_code}", api + "/routes"])).Stdout);
        Assert.Equal("401", (await CurlAsync(["-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer wrong-" + token, api + "/routes"])).Stdout);

        // 127.0.0.2 is loopback too, but outside the configured 127.0.0.1/32: the token does not help.
        Assert.Equal("403", (await CurlAsync(["--interface", "127.0.0.2", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer " + token, api + "/routes"])).Stdout);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "AdminRequestRefused" && e.Message.Contains("127.0.0.2", StringComparison.Ordinal));

        // The status page and /metrics are not behind the token.
        Assert.Equal("200", (await CurlAsync(["-o", "/dev/null", "-w", "%{http_code}", $"http://127.0.0.1:{harness.Edge.AdminEndPoint.Port}/metrics"])).Stdout);

        var routes = await CurlAsync(["-f", "-H", "Authorization: Bearer " + token, api + "/routes"]);
        output.WriteLine(routes.Stdout);
        using (var document = JsonDocument.Parse(routes.Stdout))
        {
            var route = Assert.Single(document.RootElement.GetProperty("routes").EnumerateArray());
            Assert.Equal(TunnelHarness.Hostname, route.GetProperty("hostname").GetString());
            var connector = Assert.Single(route.GetProperty("connectors").EnumerateArray());
            Assert.Equal(4, connector.GetProperty("connections").GetArrayLength());
            Assert.All(connector.GetProperty("connections").EnumerateArray(), c => Assert.Equal("test-edge", c.GetProperty("edge").GetString()));
        }

        // Drain: the origin replaces every connection (here on the same edge, the only one) and closes the old ones.
        var connectorId = harness.Edge.Routes.Connections().First().ConnectorId;
        var before = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();
        var drain = await CurlAsync(["-f", "-X", "POST", "-H", "Authorization: Bearer " + token, $"{api}/connectors/{connectorId}/drain"]);
        Assert.True(drain.ExitCode == 0, Cli.Describe(drain));
        await Wait.UntilAsync(() =>
        {
            var now = harness.Edge.Routes.Connections();
            return now.Count(c => c.IsUsable) == 4 && now.All(c => !before.Contains(c.Id));
        }, TimeSpan.FromSeconds(20), "the drained connections are replaced");

        // Revoke through the API: the connections go within 5 s, the origin is told why.
        var credential = harness.Edge.Routes.Connections().First().CredentialId;
        var stopwatch = Stopwatch.StartNew();
        var revoke = await CurlAsync(["-f", "-X", "POST", "-H", "Authorization: Bearer " + token, "-H", "Content-Type: application/json", "--data", "{\"reason\":\"decommissioned\"}", $"{api}/credentials/{credential}/revoke"]);
        Assert.True(revoke.ExitCode == 0, Cli.Describe(revoke));
        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount == 0, TimeSpan.FromSeconds(15), "the revoked credential's connections are closed");
        Assert.True(stopwatch.Elapsed <= RevocationBound, $"the connections closed after {stopwatch.Elapsed.TotalSeconds:0.00} s");
        var (_, originLog) = await IdentityTests.RegistrationRefusedAsync(harness, origin, "credential_revoked");
        Assert.Contains("decommissioned", originLog, StringComparison.Ordinal);
        Assert.Contains(credential, File.ReadAllText(harness.Edge.Options.RevocationListPath!), StringComparison.Ordinal);
    }

    private static Task<Cli.Result> CurlAsync(string[] arguments) => Cli.RunAsync("curl", ["-s", .. arguments], CurlTimeout);
}
