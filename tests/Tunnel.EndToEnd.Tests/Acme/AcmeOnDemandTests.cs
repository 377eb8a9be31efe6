using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>On-demand issuance: the first handshake for a name a route covers gets a certificate; other names never do.</summary>
public class AcmeOnDemandTests
{
    [Fact]
    public async Task The_first_visitor_of_a_routed_name_gets_a_pebble_certificate_and_unrouted_or_unallowed_names_get_none()
    {
        const string Routed = "app.ondemand.example.test";
        const string NotAllowed = "other.example.test";
        const string Stranger = "stranger.ondemand.example.test";
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Routed), AcmeTestBed.AddressRecord(NotAllowed), AcmeTestBed.AddressRecord(Stranger)], acme =>
        {
            acme.OnDemand = true;
            acme.OnDemandAllowedNames = ["*.ondemand.example.test"];
        });
        await bed.Harness.StartOriginAsync(hostnames: [Routed, NotAllowed]);
        var root = await bed.Pebble!.WriteRootAsync();

        // The handshake waits for the order: the very first request verifies.
        var first = await bed.CurlAsync(Routed, root);
        Assert.True(first.ExitCode == 0, Cli.Describe(first));
        Assert.Contains("Hello from HelloOrigin", first.Stdout, StringComparison.Ordinal);
        Assert.Contains(bed.Certificates.Status(), s => s.OnDemand && s.Names.Contains(Routed) && s.NotAfter is not null);

        foreach (var (name, reason) in new[] { (Stranger, "no_route"), (NotAllowed, "not_allowed") })
        {
            using var served = await ServedCertificateAsync(bed.HttpsPort, name);
            Assert.StartsWith("CN=tunnel-edge fallback", served.Subject, StringComparison.Ordinal);
            Assert.Contains(bed.Measurements(), m => m.Instrument == "tunnel.edge.acme.on_demand.refused" && m.Tags["reason"] == reason);
            Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Id == 425 && e.Message.Contains(name, StringComparison.Ordinal));
        }

        Assert.DoesNotContain(bed.Certificates.Status(), s => s.Names.Contains(Stranger) || s.Names.Contains(NotAllowed));
        Assert.Single(bed.Measurements(), m => m.Instrument == "tunnel.edge.acme.orders");
    }

    /// <summary>The certificate the edge's HTTPS port presents for <paramref name="name"/>, by a real TLS handshake.</summary>
    private static async Task<X509Certificate2> ServedCertificateAsync(int port, string name)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        X509Certificate2? served = null;
        await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, _) =>
        {
            served = certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return true; // Only looked at, never trusted: the connection sends nothing.
        });
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = name }).WaitAsync(TimeSpan.FromSeconds(10));
        return served ?? throw new InvalidOperationException("No certificate was presented.");
    }
}
