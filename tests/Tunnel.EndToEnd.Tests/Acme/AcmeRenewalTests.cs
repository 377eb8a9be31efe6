using System.Security.Cryptography.X509Certificates;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>Renewal against a real pebble issuing short-lived certificates, with visitors connecting throughout.</summary>
public class AcmeRenewalTests
{
    // Pebble issues 12-second certificates: the edge renews at about 8 s (two thirds, less jitter).
    private const int ValiditySeconds = 12;
    private static readonly TimeSpan RenewalWait = TimeSpan.FromSeconds(40);

    [Fact]
    public async Task A_short_lived_certificate_is_renewed_before_it_expires_without_a_failed_visitor_request()
    {
        const string Name = "renew.example.test";
        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name)], acme => acme.Names = [Name], validitySeconds: ValiditySeconds);
        await bed.Harness.StartOriginAsync(hostnames: [Name]);
        var first = await bed.WaitForCertificateAsync(Name, TimeSpan.FromSeconds(30));
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(await bed.Pebble!.WriteRootAsync());

        // A new connection for every request, so each handshake picks the certificate serving at that moment.
        var serials = new List<string>();
        var requests = 0;
        var deadline = DateTime.UtcNow + RenewalWait;
        while (serials.Distinct().Count() < 2 && DateTime.UtcNow < deadline)
        {
            string? serial = null;
            using var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, ct) =>
                {
                    var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                    await socket.ConnectAsync(System.Net.IPAddress.Loopback, bed.HttpsPort, ct);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                },
                SslOptions =
                {
                    RemoteCertificateValidationCallback = (_, certificate, sent, errors) =>
                    {
                        using var chain = new X509Chain();
                        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                        chain.ChainPolicy.ExtraStore.AddRange(sent!.ChainPolicy.ExtraStore);
                        using var leaf = X509CertificateLoader.LoadCertificate(certificate!.GetRawCertData());
                        serial = leaf.SerialNumber;
                        return (errors & ~System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors) == 0 && chain.Build(leaf);
                    },
                },
            };
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
            using var response = await client.GetAsync($"https://{Name}:{bed.HttpsPort}/");
            Assert.True(response.IsSuccessStatusCode, $"request {requests} answered {(int)response.StatusCode}");
            requests++;
            serials.Add(serial!);
            await Task.Delay(200);
        }

        Assert.True(serials.Distinct().Count() >= 2, $"a renewed certificate served within {RenewalWait.TotalSeconds} s ({requests} requests, status: {string.Join("; ", bed.Certificates.Status())})");
        var renewed = bed.Certificates.Status().Single();
        Assert.True(renewed.LastRenewal > first.LastRenewal, "the renewal is recorded");
        Assert.Null(renewed.LastError);
        Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Name == "AcmeOrdering" && e.Message.Contains("renewal due", StringComparison.Ordinal));
    }
}
