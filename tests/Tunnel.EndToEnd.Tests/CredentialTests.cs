using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Protocol.Credentials;
using Tunnel.Transport;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// The origin's identity from one credential file, and its renewal while the tunnel serves.
/// </summary>
public class CredentialTests
{
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RenewalTimeout = TimeSpan.FromSeconds(60);
    private const int HaConnections = 4;

    [Fact]
    public async Task An_origin_configured_with_only_a_credential_file_serves_visitors()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var credential = harness.Pki.CreateCredential([TunnelHarness.Hostname, "*.apps.test"], [EdgeAddress(harness)]);
        var path = WriteCredential(harness, credential);

        var origin = await harness.StartBareOriginAsync(tunnel => tunnel.CredentialPath = path, waitForConnections: HaConnections);

        // curl as a visitor would, by the exact name.
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--fail", harness.VisitorUrl("/")], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);

        // The credential's wildcard registers as a wildcard route: any name one label below is served.
        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/") { Headers = { Host = "tenant-42.apps.test" } };
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("Hello from HelloOrigin", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var routes = harness.Edge.Routes.Snapshot();
        Assert.Equal(HaConnections, routes[TunnelHarness.Hostname].Length);
        Assert.Equal(HaConnections, routes["*.apps.test"].Length);
        var status = origin.App.Services.GetRequiredService<ITunnelStatus>();
        Assert.Equal(credential.Id, status.Credential?.CredentialId);
        Assert.All(status.Slots, slot => Assert.Equal(credential.Id, slot.CredentialId));
    }

    [Fact]
    public async Task The_credential_path_binds_from_configuration()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var credential = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        var path = WriteCredential(harness, credential);

        // Configuration alone, as Tunnel__CredentialPath in the environment or appsettings.json gives it.
        var origin = await harness.StartBareOriginAsync(
            configureBuilder: builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Tunnel:CredentialPath"] = path }),
            waitForConnections: HaConnections);

        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--fail", harness.VisitorUrl("/")], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Equal(credential.Id, origin.App.Services.GetRequiredService<ITunnelStatus>().Credential?.CredentialId);
    }

    [Fact]
    public async Task HelloOrigin_as_a_process_connects_with_only_Tunnel__CredentialPath_in_its_environment()
    {
        const string hostname = "proc.test";
        await using var processes = await TunnelProcesses.StartAsync(hostname, credentialFile: true);
        string[] resolve = ["--resolve", $"{hostname}:{processes.VisitorPort}:127.0.0.1"];

        // Bounded: the process starts, dials and registers; curl answers 502 until then.
        Cli.Result? result = null;
        for (var attempt = 0; attempt < 60; attempt++)
        {
            result = await Cli.RunAsync("curl", [.. resolve, "-sS", "--fail", $"http://{hostname}:{processes.VisitorPort}/healthz"], CurlTimeout);
            if (result.ExitCode == 0 && result.Stdout.Contains("Healthy", StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(500);
        }

        Assert.True(result is { ExitCode: 0 } && result.Stdout.Contains("Healthy", StringComparison.Ordinal), $"{Cli.Describe(result!)}\n{processes.Output}");
        var hello = await Cli.RunAsync("curl", [.. resolve, "-sS", "--fail", $"http://{hostname}:{processes.VisitorPort}/"], CurlTimeout);
        Assert.True(hello.ExitCode == 0, Cli.Describe(hello));
        Assert.Contains("Hello from HelloOrigin", hello.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_renewed_credential_replaces_every_connection_under_load_without_a_failed_request()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var first = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        var path = WriteCredential(harness, first);
        var origin = await harness.StartBareOriginAsync(tunnel => tunnel.CredentialPath = path, waitForConnections: HaConnections);
        var oldIds = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();
        Assert.Equal(HaConnections, oldIds.Count);

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 4, maxDuration: TimeSpan.FromSeconds(120));
        await Wait.UntilAsync(() => load.Succeeded >= 50, TimeSpan.FromSeconds(20), "the load is flowing");

        var renewed = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        Assert.NotEqual(first.Id, renewed.Id);
        TestPki.WriteCredentialAtomically(path, renewed);

        await WaitForRenewalAsync(harness, origin, oldIds, renewed.Id);
        var afterRenewal = load.Succeeded;
        await Wait.UntilAsync(() => load.Succeeded >= afterRenewal + 50, TimeSpan.FromSeconds(20), "the load flows on the new connections");
        await load.StopAsync();

        Assert.True(load.Failures.Count == 0, $"{load.Failures.Count} failed of {load.Succeeded + load.Failures.Count}: {string.Join("; ", load.Failures.Take(5))}");
        Assert.Equal(HaConnections, origin.Logs.Entries.Count(e => e.EventId.Name == "Renewing"));
        Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "CredentialRenewed" && e.Message.Contains(renewed.Id, StringComparison.Ordinal));
        Assert.DoesNotContain(origin.Logs.Entries, e => e.EventId.Name is "DialFailed" or "RegistrationRejected" or "CredentialReloadFailed");
    }

    [Fact]
    public async Task Renewed_certificate_and_key_PEM_files_replace_every_connection()
    {
        await using var harness = await TunnelHarness.StartAsync();
        string? certificatePath = null, keyPath = null;
        var origin = await harness.StartOriginAsync(configureTunnel: tunnel =>
        {
            certificatePath = tunnel.CertificatePath;
            keyPath = tunnel.CertificateKeyPath;
        });
        var oldIds = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2, maxDuration: TimeSpan.FromSeconds(120));
        await Wait.UntilAsync(() => load.Succeeded >= 20, TimeSpan.FromSeconds(20), "the load is flowing");

        // As tunnel-edge writes them: the certificate, then the key, each renamed into place.
        using var renewed = CertificateIssuer.IssueOriginCertificate(harness.Pki.Ca, [TunnelHarness.Hostname], TimeSpan.FromDays(1));
        CertificateIssuer.WritePem(renewed, certificatePath!, keyPath!);

        await WaitForRenewalAsync(harness, origin, oldIds, TunnelCredential.IdOf(renewed));
        await load.StopAsync();
        Assert.True(load.Failures.Count == 0, $"{load.Failures.Count} failed: {string.Join("; ", load.Failures.Take(5))}");
    }

    [Fact]
    public async Task A_corrupt_credential_write_is_ignored_with_a_warning_and_reported_by_the_health_check()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var first = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        var path = WriteCredential(harness, first);
        var origin = await harness.StartBareOriginAsync(
            tunnel => tunnel.CredentialPath = path,
            configureBuilder: builder => builder.Services.AddHealthChecks().AddTunnel(),
            waitForConnections: HaConnections);
        var oldIds = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();
        Assert.Equal(HealthStatus.Healthy, (await CheckHealthAsync(origin)).Status);

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2, maxDuration: TimeSpan.FromSeconds(120));
        await Wait.UntilAsync(() => load.Succeeded >= 20, TimeSpan.FromSeconds(20), "the load is flowing");

        // A writer that truncates and writes in place, caught half way: the JSON breaks off in the key.
        var json = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]).ToJson();
        await File.WriteAllTextAsync(path, json[..(json.Length / 2)]);

        await Wait.UntilAsync(() => origin.Logs.Entries.Any(e => e.EventId.Name == "CredentialReloadFailed"), TimeSpan.FromSeconds(20), "the origin warns about the unusable credential");
        var warning = origin.Logs.Entries.First(e => e.EventId.Name == "CredentialReloadFailed");
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, warning.Level);
        Assert.Contains(path, warning.Message, StringComparison.Ordinal);
        Assert.Contains(first.Id, warning.Message, StringComparison.Ordinal);

        var report = await CheckHealthAsync(origin);
        Assert.Equal(HealthStatus.Degraded, report.Status);
        Assert.Contains("not usable", report.Description, StringComparison.Ordinal);
        Assert.Equal(first.Id, origin.App.Services.GetRequiredService<ITunnelStatus>().Credential?.CredentialId);

        // The old connections keep serving; none was replaced.
        var served = load.Succeeded;
        await Wait.UntilAsync(() => load.Succeeded >= served + 20, TimeSpan.FromSeconds(20), "the old connections keep serving");
        Assert.Equal(oldIds, harness.Edge.Routes.Connections().Where(c => c.IsUsable).Select(c => c.Id).ToHashSet());
        Assert.DoesNotContain(origin.Logs.Entries, e => e.EventId.Name == "Renewing");

        // The next change is read again: a good credential now renews, and the health clears.
        var renewed = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        TestPki.WriteCredentialAtomically(path, renewed);
        await WaitForRenewalAsync(harness, origin, oldIds, renewed.Id);
        await Wait.UntilAsync(() => CheckHealthAsync(origin).Result.Status == HealthStatus.Healthy, TimeSpan.FromSeconds(10), "the health check is Healthy again");
        await load.StopAsync();
        Assert.True(load.Failures.Count == 0, $"{load.Failures.Count} failed: {string.Join("; ", load.Failures.Take(5))}");
    }

    [Fact]
    public async Task A_credential_signed_by_a_new_CA_the_edge_trusts_replaces_the_old_one()
    {
        using var newCa = CertificateIssuer.CreateCertificateAuthority("Second Test Edge CA", TimeSpan.FromDays(1));
        await using var harness = await TunnelHarness.StartAsync(edge =>
        {
            // The edge trusts both CAs during the move from one to the other.
            var bundle = Path.Combine(Path.GetDirectoryName(edge.CaCertificatePath)!, "trusted-cas.pem");
            File.WriteAllText(bundle, File.ReadAllText(edge.CaCertificatePath!) + newCa.ExportCertificatePem() + "\n");
            edge.CaCertificatePath = bundle;
        });
        var first = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        var path = WriteCredential(harness, first);
        var origin = await harness.StartBareOriginAsync(tunnel => tunnel.CredentialPath = path, waitForConnections: HaConnections);
        var oldIds = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();

        await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 2, maxDuration: TimeSpan.FromSeconds(120));
        await Wait.UntilAsync(() => load.Succeeded >= 20, TimeSpan.FromSeconds(20), "the load is flowing");

        var renewed = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)], issuer: newCa);
        TestPki.WriteCredentialAtomically(path, renewed);
        await WaitForRenewalAsync(harness, origin, oldIds, renewed.Id);
        await load.StopAsync();

        Assert.True(load.Failures.Count == 0, $"{load.Failures.Count} failed: {string.Join("; ", load.Failures.Take(5))}");
        var status = origin.App.Services.GetRequiredService<ITunnelStatus>();
        Assert.Contains("Second Test Edge CA", CertificateIssuerOf(renewed), StringComparison.Ordinal);
        Assert.Equal(renewed.Id, status.Credential?.CredentialId);
    }

    [Fact]
    public async Task A_renewed_credential_the_edge_refuses_leaves_the_old_connections_serving()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var first = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        var path = WriteCredential(harness, first);
        var origin = await harness.StartBareOriginAsync(tunnel => tunnel.CredentialPath = path, waitForConnections: HaConnections);
        var oldIds = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();

        // A well-formed credential from a CA the edge does not trust: it loads, but no dial with it succeeds.
        using var stranger = CertificateIssuer.CreateCertificateAuthority("Stranger CA", TimeSpan.FromDays(1));
        var refused = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)], issuer: stranger);
        TestPki.WriteCredentialAtomically(path, refused);

        await Wait.UntilAsync(() => origin.Logs.Entries.Count(e => e.EventId.Name == "DialFailed") >= 2, TimeSpan.FromSeconds(30), "the replacement's dials fail");

        // Only one slot is being replaced at a time, and it keeps its old connection until a replacement
        // registers: all four old connections still serve.
        Assert.Equal(1, origin.Logs.Entries.Count(e => e.EventId.Name == "Renewing"));
        Assert.Equal(oldIds, harness.Edge.Routes.Connections().Where(c => c.IsUsable).Select(c => c.Id).ToHashSet());
        for (var i = 0; i < 8; i++)
        {
            var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--fail", harness.VisitorUrl("/")], CurlTimeout);
            Assert.True(result.ExitCode == 0, Cli.Describe(result));
        }
    }

    [Fact]
    public async Task A_certificate_close_to_expiry_or_expired_is_warned_about_and_degrades_the_health()
    {
        await using var harness = await TunnelHarness.StartAsync();

        // The test certificates live a day, so the warning period is their last third (8 h, shorter
        // than the default 7 days). Seen with 4 h left, the certificate is close to expiry.
        var credential = harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]);
        var expiring = await harness.StartBareOriginAsync(
            tunnel => tunnel.CredentialPath = WriteCredential(harness, credential),
            configureBuilder: builder =>
            {
                builder.Services.AddSingleton<TimeProvider>(new ShiftedTimeProvider(credential.NotAfter - DateTimeOffset.UtcNow - TimeSpan.FromHours(4)));
                builder.Services.AddHealthChecks().AddTunnel();
            },
            waitForConnections: HaConnections);
        var warning = Assert.Single(expiring.Logs.Entries, e => e.EventId.Name == "CredentialExpiring");
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, warning.Level);
        Assert.Contains(credential.Id, warning.Message, StringComparison.Ordinal);
        var report = await CheckHealthAsync(expiring);
        Assert.Equal(HealthStatus.Degraded, report.Status);
        Assert.Contains($"Certificate {credential.Id} expires at", report.Description, StringComparison.Ordinal);

        // Seen from two days later (the origin's clock only; the edge still accepts it), the same certificate has expired.
        await using var later = await TunnelHarness.StartAsync();
        var stale = later.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(later)]);
        var expired = await later.StartBareOriginAsync(
            tunnel => tunnel.CredentialPath = WriteCredential(later, stale),
            configureBuilder: builder =>
            {
                builder.Services.AddSingleton<TimeProvider>(new ShiftedTimeProvider(TimeSpan.FromDays(2)));
                builder.Services.AddHealthChecks().AddTunnel();
            },
            waitForConnections: HaConnections);
        Assert.Single(expired.Logs.Entries, e => e.EventId.Name == "CredentialExpired");
        report = await CheckHealthAsync(expired);
        Assert.Equal(HealthStatus.Degraded, report.Status);
        Assert.Contains($"Certificate {stale.Id} expired at", report.Description, StringComparison.Ordinal);
    }

    /// <summary>The system clock, read as if it were <c>shift</c> later (timers and timestamps unchanged).</summary>
    private sealed class ShiftedTimeProvider(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + shift;
    }

    /// <summary>Waits until the edge holds exactly <see cref="HaConnections"/> usable connections, none of the old ones, each registered with <paramref name="credentialId"/>.</summary>
    private static async Task WaitForRenewalAsync(TunnelHarness harness, TunnelHarness.Origin origin, IReadOnlySet<string> oldIds, string credentialId)
    {
        await Wait.UntilAsync(
            () =>
            {
                var connections = harness.Edge.Routes.Connections();
                return connections.Count == HaConnections && connections.All(c => c.IsUsable && !oldIds.Contains(c.Id));
            },
            RenewalTimeout,
            "every old connection is replaced and closed");

        // The origin registered each of the edge's connections with the renewed certificate.
        var status = origin.App.Services.GetRequiredService<ITunnelStatus>();
        var registeredWith = status.RecentEvents
            .Where(e => e.Kind == TunnelConnectionEventKind.Registered && e.TunnelConnectionId is not null)
            .ToDictionary(e => e.TunnelConnectionId!, e => e.CredentialId);
        foreach (var connection in harness.Edge.Routes.Connections())
        {
            Assert.True(registeredWith.TryGetValue(connection.Id, out var id), $"connection {connection.Id} was registered by this origin");
            Assert.Equal(credentialId, id);
        }

        Assert.All(status.Slots, slot => Assert.Equal(credentialId, slot.CredentialId));
        Assert.Equal(credentialId, status.Credential?.CredentialId);
    }

    private static string EdgeAddress(TunnelHarness harness) => $"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}";

    private static string WriteCredential(TunnelHarness harness, TunnelCredential credential)
    {
        var path = Path.Combine(harness.Pki.Directory, "credentials", "origin.credential.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        TestPki.WriteCredentialAtomically(path, credential);
        return path;
    }

    private static string CertificateIssuerOf(TunnelCredential credential)
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(credential.Certificate);
        return certificate.Issuer;
    }

    private static async Task<HealthReportEntry> CheckHealthAsync(TunnelHarness.Origin origin)
    {
        var health = await origin.App.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return health.Entries["tunnel"];
    }
}
