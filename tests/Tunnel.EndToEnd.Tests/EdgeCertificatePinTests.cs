using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Protocol.Credentials;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// <c>DangerousAcceptAnyEdgeCertificate</c> against a real edge: refused outside Development, and even
/// there the credential file's pinned edge CA still decides, unless the second switch says otherwise.
/// </summary>
public class EdgeCertificatePinTests
{
    private const int HaConnections = 2;

    [Fact]
    public async Task Accepting_any_edge_certificate_from_configuration_stops_the_app_outside_Development()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var path = WriteCredential(harness, harness.Pki.CreateCredential([TunnelHarness.Hostname], [EdgeAddress(harness)]));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => harness.StartBareOriginAsync(
            tunnel => tunnel.CredentialPath = path,
            configureBuilder: builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Tunnel:DangerousAcceptAnyEdgeCertificate"] = "true" })));

        Assert.Contains("Tunnel:DangerousAcceptAnyEdgeCertificate is on in the 'Production' environment", error.Message, StringComparison.Ordinal);
        Assert.Empty(harness.Edge.Routes.Connections());
    }

    [Fact]
    public async Task A_credential_pinned_edge_CA_still_applies_when_any_edge_certificate_is_accepted_in_Development()
    {
        await using var harness = await TunnelHarness.StartAsync();
        using var otherCa = CertificateIssuer.CreateCertificateAuthority("Not The Edge's CA", TimeSpan.FromDays(1));

        // The origin certificate is the edge's CA's, so the edge would register it; the pinned CA is
        // another one, which did not issue the edge's certificate: the dial must stop at TLS.
        var path = WriteCredential(harness, CredentialPinning(harness, otherCa));
        var origin = await harness.StartBareOriginAsync(
            tunnel =>
            {
                tunnel.CredentialPath = path;
                tunnel.HaConnections = HaConnections;
                tunnel.DangerousAcceptAnyEdgeCertificate = true;
            },
            environmentName: Environments.Development);

        await Wait.UntilAsync(
            () => origin.Logs.Entries.Count(e => e.EventId.Name == "DialFailed" && e.Message.Contains("tls_error", StringComparison.Ordinal)) >= HaConnections,
            TimeSpan.FromSeconds(20),
            "every slot's dial failed the TLS handshake against the pinned CA");
        Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "EdgeCertificatePinStillApplies" && e.Level == LogLevel.Warning && e.Message.Contains("Not The Edge's CA", StringComparison.Ordinal));
        Assert.Empty(harness.Edge.Routes.Connections());
    }

    [Fact]
    public async Task The_second_switch_lets_any_edge_certificate_override_the_pinned_CA_with_a_warning_at_every_dial()
    {
        await using var harness = await TunnelHarness.StartAsync();
        using var otherCa = CertificateIssuer.CreateCertificateAuthority("Not The Edge's CA", TimeSpan.FromDays(1));
        var path = WriteCredential(harness, CredentialPinning(harness, otherCa));
        var origin = await harness.StartBareOriginAsync(
            tunnel =>
            {
                tunnel.CredentialPath = path;
                tunnel.HaConnections = HaConnections;
                tunnel.DangerousAcceptAnyEdgeCertificate = true;
                tunnel.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa = true;
            },
            environmentName: Environments.Development,
            waitForConnections: HaConnections);

        Assert.True(origin.Logs.Entries.Count(e => e.EventId.Name == "EdgeCertificateNotValidated" && e.Level == LogLevel.Warning) >= HaConnections, "a warning at each dial");
    }

    private static TunnelCredential CredentialPinning(TunnelHarness harness, System.Security.Cryptography.X509Certificates.X509Certificate2 pinnedCa)
    {
        using var certificate = CertificateIssuer.IssueOriginCertificate(harness.Pki.Ca, [TunnelHarness.Hostname], TimeSpan.FromDays(1));
        return TunnelCredential.FromCertificate(certificate, [TunnelHarness.Hostname], pinnedCa.ExportCertificatePem(), [EdgeAddress(harness)], "localhost");
    }

    private static string EdgeAddress(TunnelHarness harness) => $"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}";

    private static string WriteCredential(TunnelHarness harness, TunnelCredential credential)
    {
        var path = Path.Combine(harness.Pki.Directory, "pin-" + Guid.NewGuid().ToString("N")[..8] + ".credential.json");
        TestPki.WriteCredentialAtomically(path, credential);
        return path;
    }
}
