using System.Net;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>Rotating the edge's CA and renewing its server certificate while visitors keep coming.</summary>
public class EdgeRotationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_CA_rotates_and_the_server_certificate_renews_under_steady_load_with_zero_failed_requests()
    {
        var directory = new EdgeDirectory(Directory.CreateTempSubdirectory("tunnel-rotation-").FullName);
        try
        {
            directory.Initialize("Old CA", ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1), force: false);
            await using var harness = await TunnelHarness.StartAsync(o =>
            {
                o.CaCertificatePath = directory.File(EdgeDirectory.TrustedCasFile);
                o.ServerCertificatePath = directory.File(EdgeDirectory.ServerCertificateFile);
                o.ServerKeyPath = directory.File(EdgeDirectory.ServerKeyFile);
                o.RevocationListPath = directory.File(EdgeDirectory.RevocationsFile);
            });

            var (_, oldCredential) = await StartOriginAsync(harness, directory, "old");
            await Wait.UntilAsync(() => Usable(harness, oldCredential) == 4, TimeSpan.FromSeconds(20), "the old credential's connections are registered");
            var oldConnections = harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet();

            await using var load = Load.Start(harness.VisitorPort, TunnelHarness.Hostname, workers: 4, maxDuration: TimeSpan.FromSeconds(120));
            await WaitForMoreSuccessesAsync(load, "before the rotation");

            // 1. The next CA: trusted beside the old one, and issuing from now on.
            using (var next = directory.RotateCa("New CA", TimeSpan.FromDays(1)))
            {
                await WaitForReloadAsync(harness, EdgeDirectory.TrustedCasFile);
            }

            var (_, newCredential) = await StartOriginAsync(harness, directory, "new");
            await Wait.UntilAsync(() => Usable(harness, newCredential) == 4, TimeSpan.FromSeconds(20), "the new CA's credential registers during the overlap");
            await WaitForMoreSuccessesAsync(load, "during the overlap");

            // 2. A server certificate from the new CA: new handshakes get it, the tunnels up now stay up.
            string renewedSerial;
            using (var renewed = directory.RenewServerCertificate(null, null, TimeSpan.FromDays(1)))
            {
                renewedSerial = renewed.SerialNumber;
            }

            await WaitForReloadAsync(harness, EdgeDirectory.ServerCertificateFile);
            using (var probeCertificate = X509Certificate2.CreateFromPemFile(Path.Combine(directory.Path, "new.pem"), Path.Combine(directory.Path, "new.key")))
            {
                var (socket, ssl) = await TunnelRefusalTests.HandshakeAsync(harness, probeCertificate);
                using (socket)
                await using (ssl)
                {
                    using var presented = new X509Certificate2(ssl.RemoteCertificate!);
                    Assert.Equal(renewedSerial, presented.SerialNumber);
                }
            }

            Assert.Subset(harness.Edge.Routes.Connections().Select(c => c.Id).ToHashSet(), oldConnections);
            await WaitForMoreSuccessesAsync(load, "after the server certificate renewal");

            // 3. Retire the old CA: its credential's connections are withdrawn, the new replica carries on.
            directory.RetireOldCas();
            await WaitForReloadAsync(harness, EdgeDirectory.TrustedCasFile, times: 2);
            await Wait.UntilAsync(() => harness.Edge.Routes.Connections().All(c => c.CredentialId != oldCredential), TimeSpan.FromSeconds(15), "the old CA's connections are closed");
            await WaitForMoreSuccessesAsync(load, "after the old CA was retired");

            await load.StopAsync();
            output.WriteLine($"{load.Succeeded} requests succeeded; failures: {string.Join("; ", load.Failures)}");
            Assert.Empty(load.Failures);
            Assert.Equal(4, Usable(harness, newCredential));
        }
        finally
        {
            Directory.Delete(directory.Path, recursive: true);
        }
    }

    private static int Usable(TunnelHarness harness, string credential) => harness.Edge.Routes.Connections().Count(c => c.IsUsable && c.CredentialId == credential);

    private static async Task<(TunnelHarness.Origin Origin, string CredentialId)> StartOriginAsync(TunnelHarness harness, EdgeDirectory directory, string name)
    {
        var credential = directory.Issue([TunnelHarness.Hostname], [], "localhost", TimeSpan.FromDays(1), name);
        var prefix = Path.Combine(directory.Path, name);
        using (var certificate = credential.CreateCertificate())
        {
            CertificateIssuer.WritePem(certificate, prefix + ".pem", prefix + ".key");
        }

        // The edge CA the credential pins: the trust bundle when it was issued.
        await File.WriteAllTextAsync(prefix + "-edge-ca.pem", credential.EdgeCa);
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.CertificatePath = prefix + ".pem";
            tunnel.CertificateKeyPath = prefix + ".key";
            tunnel.EdgeCaPath = prefix + "-edge-ca.pem";
        });
        return (origin, credential.Id);
    }

    private static Task WaitForReloadAsync(TunnelHarness harness, string file, int times = 1) =>
        Wait.UntilAsync(() => harness.EdgeLogs.Entries.Count(e => e.EventId.Name == "CredentialFileReloaded" && e.Message.Contains(file, StringComparison.Ordinal)) >= times,
            TimeSpan.FromSeconds(15), $"the edge reloads {file}");

    private static async Task WaitForMoreSuccessesAsync(Load load, string when)
    {
        var target = load.Succeeded + 50;
        await Wait.UntilAsync(() => load.Succeeded >= target, TimeSpan.FromSeconds(30), $"50 more requests succeed {when}");
    }
}
