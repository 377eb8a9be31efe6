using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

/// <summary>The cluster half: revocations through etcd, and the inter-edge port's trust reloaded.</summary>
public partial class CredentialsOverTimeTests
{
    private const string Host = "hello.test";

    // The issue's bound for a revocation (5 s at the edge that made it) plus the hop through etcd.
    private static readonly TimeSpan ClusterRevocationBound = TimeSpan.FromSeconds(6);

    [Fact]
    public async Task A_revocation_made_at_one_edges_admin_API_closes_the_credentials_tunnels_at_another_edge_within_seconds()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);

        // Each edge its own directory, so nothing but etcd carries the revocation from A to B.
        var token = "token-" + Guid.NewGuid().ToString("N");
        var a = await cluster.StartEdgeAsync("edge-a", "r1", directory: CopyDirectory(cluster.Pki, "a", token));
        var b = await cluster.StartEdgeAsync("edge-b", "r2", directory: CopyDirectory(cluster.Pki, "b", token: null));
        var (certificatePath, keyPath) = cluster.Pki.IssueOrigin(Host);
        string credential;
        using (var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath))
        {
            credential = certificate.SerialNumber.ToUpperInvariant();
        }

        await cluster.StartOriginAsync(Host, [b], haConnections: 2, configureTunnel: t =>
        {
            t.CertificatePath = certificatePath;
            t.CertificateKeyPath = keyPath;
        });
        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(b), "tunnel_edge_tunnels") == 2, TimeSpan.FromSeconds(20), "edge B holds the origin's 2 tunnels");

        using var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var revoke = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{a.AdminPort}/api/v1/credentials/{credential}/revoke")
        {
            Content = new StringContent("{\"reason\":\"laptop stolen\"}", System.Text.Encoding.UTF8, "application/json"),
        };
        revoke.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        var stopwatch = Stopwatch.StartNew();
        using (var answer = await admin.SendAsync(revoke))
        {
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        }

        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(b), "tunnel_edge_tunnels") == 0, TimeSpan.FromSeconds(20), "edge B closed the revoked credential's tunnels");
        output.WriteLine($"edge B closed the tunnels {stopwatch.Elapsed.TotalSeconds:0.00} s after the revocation at edge A");
        Assert.True(stopwatch.Elapsed <= ClusterRevocationBound, $"edge B closed the tunnels only after {stopwatch.Elapsed.TotalSeconds:0.00} s");

        var metrics = await EdgeCluster.MetricsAsync(b);
        Assert.Equal(2, EdgeCluster.Series(metrics, "tunnel_edge_tunnels_withdrawn_total", ("reason", "revoked")));
        Assert.Contains("laptop stolen", b.Output, StringComparison.Ordinal);

        // The origin's redials at B are refused as revoked, with A's reason.
        await EdgeCluster.UntilAsync(async () => EdgeCluster.Series(await EdgeCluster.MetricsAsync(b), "tunnel_edge_registrations_total", ("tunnel_rejection_reason", "credential_revoked")) >= 1,
            TimeSpan.FromSeconds(20), "edge B refuses the origin's redial as revoked");
    }

    [Fact]
    public async Task After_retire_ca_an_edge_certificate_of_the_retired_CA_no_longer_opens_the_peer_port()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var directory = InitializeDirectory(cluster.Pki, "rotating");
        using var oldCa = CertificateIssuer.LoadPem(directory.File(EdgeDirectory.CaCertificateFile), directory.File(EdgeDirectory.CaKeyFile));
        using var oldEdge = CertificateIssuer.IssueEdgeCertificate(oldCa, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1));
        using (directory.RotateCa("Next CA", TimeSpan.FromDays(2)))
        using (directory.RenewServerCertificate(null, null, TimeSpan.FromDays(1)))
        {
        }

        var edge = await cluster.StartEdgeAsync("edge-a", "r1", directory: directory.Path, peerCertificate: false);
        using var newCa = CertificateIssuer.LoadPem(directory.File(EdgeDirectory.CaCertificateFile), directory.File(EdgeDirectory.CaKeyFile));
        using var newEdge = CertificateIssuer.IssueEdgeCertificate(newCa, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1));

        // During the rotation both CAs' edges are peers; an old edge also holds a connection open.
        Assert.Equal(HttpStatusCode.NoContent, await ProbePeerPortAsync(edge, oldEdge));
        using var held = PeerClient(oldEdge);
        Assert.Equal(HttpStatusCode.NoContent, (await held.GetAsync($"https://127.0.0.1:{edge.PeerPort}/.tunnel-edge/probe")).StatusCode);

        var stopwatch = Stopwatch.StartNew();
        directory.RetireOldCas();
        await EdgeCluster.UntilAsync(async () =>
        {
            try
            {
                await ProbePeerPortAsync(edge, oldEdge);
                return false;
            }
            catch (HttpRequestException)
            {
                return true;
            }
        }, TimeSpan.FromSeconds(10), "the retired CA's edge certificate is refused at the peer port");
        output.WriteLine($"refused {stopwatch.Elapsed.TotalSeconds:0.00} s after retire-ca");

        // The connection opened before is closed too, and the new CA's edges still get in.
        await Assert.ThrowsAsync<HttpRequestException>(() => held.GetAsync($"https://127.0.0.1:{edge.PeerPort}/.tunnel-edge/probe"));
        Assert.Equal(HttpStatusCode.NoContent, await ProbePeerPortAsync(edge, newEdge));
    }

    [Fact]
    public async Task A_renewed_edge_certificate_reaches_the_peer_port_without_a_restart()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var directory = InitializeDirectory(cluster.Pki, "renewing");
        var edge = await cluster.StartEdgeAsync("edge-a", "r1", directory: directory.Path, peerCertificate: false);
        using var ca = CertificateIssuer.LoadPem(directory.File(EdgeDirectory.CaCertificateFile), directory.File(EdgeDirectory.CaKeyFile));
        using var client = CertificateIssuer.IssueEdgeCertificate(ca, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1));
        var before = await PeerPortCertificateSerialAsync(edge, client);

        string renewed;
        using (var certificate = directory.RenewServerCertificate(null, null, TimeSpan.FromDays(1)))
        {
            renewed = certificate.SerialNumber;
        }

        Assert.NotEqual(before, renewed);
        var stopwatch = Stopwatch.StartNew();
        await EdgeCluster.UntilAsync(async () => await PeerPortCertificateSerialAsync(edge, client) == renewed, TimeSpan.FromSeconds(10), "the peer port shows the renewed edge.pem");
        output.WriteLine($"the peer port showed the renewed certificate {stopwatch.Elapsed.TotalSeconds:0.00} s after the renewal");
    }

    /// <summary>A directory of its own for one edge: the PKI's CA and edge certificate, and an admin token when given.</summary>
    private static string CopyDirectory(TestPki pki, string name, string? token)
    {
        var directory = Path.Combine(pki.Directory, "edge-" + name);
        Directory.CreateDirectory(directory);
        foreach (var file in new[] { "ca.pem", "ca.key", "edge.pem", "edge.key" })
        {
            File.Copy(Path.Combine(pki.Directory, file), Path.Combine(directory, file));
        }

        if (token is not null)
        {
            var path = Path.Combine(directory, EdgeDirectory.AdminTokenFile);
            File.WriteAllText(path, token + "\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        return directory;
    }

    /// <summary>A directory as <c>tunnel-edge init</c> writes it, its edge certificate for localhost and 127.0.0.1 (both ends).</summary>
    private static EdgeDirectory InitializeDirectory(TestPki pki, string name)
    {
        var directory = new EdgeDirectory(Path.Combine(pki.Directory, name));
        Directory.CreateDirectory(directory.Path);
        directory.Initialize("Test CA " + name, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(2), force: false);
        return directory;
    }

    private static HttpClient PeerClient(X509Certificate2 certificate, Action<X509Certificate2>? seen = null) => new(new SocketsHttpHandler
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            ClientCertificates = [certificate],
            RemoteCertificateValidationCallback = (_, remote, _, _) =>
            {
                if (remote is X509Certificate2 server)
                {
                    seen?.Invoke(server);
                }

                return true;
            },
        },
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
    })
    { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>One probe on a new connection to the peer port, presenting <paramref name="certificate"/>.</summary>
    private static async Task<HttpStatusCode> ProbePeerPortAsync(EdgeProcess edge, X509Certificate2 certificate)
    {
        using var client = PeerClient(certificate);
        using var response = await client.GetAsync($"https://127.0.0.1:{edge.PeerPort}/.tunnel-edge/probe");
        return response.StatusCode;
    }

    private static async Task<string> PeerPortCertificateSerialAsync(EdgeProcess edge, X509Certificate2 certificate)
    {
        string? serial = null;
        using var client = PeerClient(certificate, server => serial = server.SerialNumber);
        using var response = await client.GetAsync($"https://127.0.0.1:{edge.PeerPort}/.tunnel-edge/probe");
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        return serial ?? throw new InvalidOperationException("No server certificate seen.");
    }
}
