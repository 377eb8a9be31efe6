using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>
/// Two clustered edge processes (etcd) with ACME against a real pebble, which resolves the names through a
/// real named. Edge A listens on 127.0.0.1 and edge B on 127.0.0.2, both on the ports pebble validates
/// against; the zone sends the names to B, so a challenge of an order A makes reaches B.
/// </summary>
public class AcmeClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan IssueTimeout = TimeSpan.FromSeconds(60);

    // The edges' log lines (console format: messages, no event names) for AcmeCertificateIssued,
    // AcmeOrdering and AcmeSharedCertificateAdopted.
    private const string Issued = "ACME: certificate for ";
    private const string Ordering = "ACME: ordering a certificate";
    private const string Adopted = "shared by the cluster, valid until";

    [Fact]
    public async Task A_challenge_reaching_the_edge_that_did_not_order_validates_and_both_edges_serve_the_certificate()
    {
        const string Name = "app.example.test";
        await using var bed = await ClusterBed.StartAsync(output, "app 60 IN A 127.0.0.2");
        var a = await bed.StartEdgeAsync("edge-a", "127.0.0.1", names: [Name], challenge: "http-01");
        var b = await bed.StartEdgeAsync("edge-b", "127.0.0.2", names: [], challenge: "http-01");
        await bed.Cluster.StartOriginAsync(Name, [a, b]);

        // The CA can only have reached B: the zone has no other address for the name.
        Assert.Equal(["127.0.0.2"], await bed.Named.DigAsync(Name, "A"));
        var (atA, atB) = await bed.BothServeAsync(Name);

        Assert.Equal(atA.Thumbprint, atB.Thumbprint);
        Assert.Contains("Pebble", atA.Issuer, StringComparison.Ordinal);
        await UntilLoggedAsync(a, Issued);
        await UntilLoggedAsync(b, Adopted);
        Assert.DoesNotContain(Ordering, b.Output, StringComparison.Ordinal);

        // curl, as a visitor would, verifies B's copy against pebble's root and reaches the app.
        var root = await bed.Pebble.WriteRootAsync();
        var curl = await Cli.RunAsync("curl", ["-sS", "--fail", "--resolve", $"{Name}:{bed.HttpsPort}:127.0.0.2", "--cacert", root, $"https://{Name}:{bed.HttpsPort}/"], TimeSpan.FromSeconds(30));
        Assert.True(curl.ExitCode == 0, Cli.Describe(curl));
        Assert.Contains("Hello from HelloOrigin", curl.Stdout, StringComparison.Ordinal);

        // B's status page says where its certificate came from; its key never crossed etcd in the clear.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        Assert.Contains("shared by the cluster", await http.GetStringAsync($"http://127.0.0.1:{b.AdminPort}/"), StringComparison.Ordinal);
        var stored = Assert.Single(await bed.Cluster.Etcd.RangeAsync("/tunnel/acme/certificates/"), kv => kv.Key.EndsWith("/app.example.test", StringComparison.Ordinal)).Value;
        Assert.Contains("BEGIN CERTIFICATE", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Edges_configured_for_the_same_name_order_it_once_and_both_serve_it()
    {
        const string Name = "both.example.test";
        await using var bed = await ClusterBed.StartAsync(output, "both 60 IN A 127.0.0.2");
        var a = await bed.StartEdgeAsync("edge-a", "127.0.0.1", names: [Name], challenge: "tls-alpn-01");
        var b = await bed.StartEdgeAsync("edge-b", "127.0.0.2", names: [Name], challenge: "tls-alpn-01");

        var (atA, atB) = await bed.BothServeAsync(Name);

        Assert.Equal(atA.Thumbprint, atB.Thumbprint);
        // The edge that ordered logs it; the other serves what it shared (the lines come a moment after the handshakes).
        await EdgeCluster.UntilAsync(() => Task.FromResult(new[] { a, b }.Any(e => e.Output.Contains(Adopted, StringComparison.Ordinal))), TimeSpan.FromSeconds(10), "an edge adopts the shared certificate");
        Assert.Equal(1, new[] { a, b }.Count(e => e.Output.Contains(Issued, StringComparison.Ordinal)));
        Assert.Single(bed.Pebble.Output.Split('\n'), line => line.Contains("Issued certificate serial", StringComparison.Ordinal));
    }

    [Fact]
    public async Task On_demand_an_edge_without_the_route_orders_for_a_name_another_edge_of_the_cluster_routes()
    {
        const string Name = "elsewhere.example.test";
        await using var bed = await ClusterBed.StartAsync(output, "elsewhere 60 IN A 127.0.0.2", "nowhere 60 IN A 127.0.0.2");
        var a = await bed.StartEdgeAsync("edge-a", "127.0.0.1", names: [], challenge: "http-01");
        var b = await bed.StartEdgeAsync("edge-b", "127.0.0.2", names: [], challenge: "http-01", onDemand: true);
        await bed.Cluster.StartOriginAsync(Name, [a]);

        // The origin is connected to A only; B learns the route from etcd, so its first visitor gets a certificate.
        var root = await bed.Pebble.WriteRootAsync();
        Cli.Result curl = default!;
        await EdgeCluster.UntilAsync(async () => (curl = await Cli.RunAsync("curl", ["-sS", "--fail", "--resolve", $"{Name}:{bed.HttpsPort}:127.0.0.2", "--cacert", root,
            $"https://{Name}:{bed.HttpsPort}/"], TimeSpan.FromSeconds(30))).ExitCode == 0, IssueTimeout, "curl through B verifies an on-demand certificate");
        Assert.Contains("Hello from HelloOrigin", curl.Stdout, StringComparison.Ordinal);
        await UntilLoggedAsync(b, Issued);

        // A name no edge of the cluster routes gets nothing.
        var refused = await Cli.RunAsync("curl", ["-sS", "--resolve", $"nowhere.example.test:{bed.HttpsPort}:127.0.0.2", "--cacert", root, $"https://nowhere.example.test:{bed.HttpsPort}/"], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, refused.ExitCode);
        await UntilLoggedAsync(b, "no certificate on demand for nowhere.example.test: no registered route covers it");
    }

    private static Task UntilLoggedAsync(EdgeProcess edge, string line) =>
        EdgeCluster.UntilAsync(() => Task.FromResult(edge.Output.Contains(line, StringComparison.Ordinal)), TimeSpan.FromSeconds(10), $"the edge logs '{line}'");

    /// <summary>named, pebble, etcd and the edges, with a fresh cluster key every edge is given.</summary>
    private sealed class ClusterBed : IAsyncDisposable
    {
        private readonly WriteOnDispose _dump;
        private readonly string _clusterKey;

        private ClusterBed(ITestOutputHelper output, NamedProcess named, PebbleProcess pebble, EdgeCluster cluster, int httpPort, int httpsPort)
        {
            Named = named;
            Pebble = pebble;
            Cluster = cluster;
            HttpPort = httpPort;
            HttpsPort = httpsPort;
            _dump = new WriteOnDispose(output, () => cluster.Output + "\n[named]\n" + named.Log + "\n[pebble]\n" + pebble.Output);
            _clusterKey = Path.Combine(cluster.Pki.Directory, "acme-cluster.key");
            TestPki.WriteSecret(_clusterKey, Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)) + "\n");
        }

        public NamedProcess Named { get; }

        public PebbleProcess Pebble { get; }

        public EdgeCluster Cluster { get; }

        public int HttpPort { get; }

        public int HttpsPort { get; }

        public static async Task<ClusterBed> StartAsync(ITestOutputHelper output, params string[] records)
        {
            var named = await NamedProcess.StartAsync("example.test", "edge-key", records);
            var httpPort = PebbleProcess.FreePort();
            var httpsPort = PebbleProcess.FreePort();
            var pebble = await PebbleProcess.StartAsync(httpPort, httpsPort, new IPEndPoint(IPAddress.Loopback, named.Port));
            var cluster = await EdgeCluster.StartAsync();
            return new ClusterBed(output, named, pebble, cluster, httpPort, httpsPort);
        }

        /// <summary>An edge on <paramref name="address"/> with the ports pebble validates against, its own ACME storage and the cluster key.</summary>
        public Task<EdgeProcess> StartEdgeAsync(string name, string address, string[] names, string challenge, bool onDemand = false)
        {
            var storage = Directory.CreateTempSubdirectory("tunnel-acme-" + name + "-").FullName;
            var config = Path.Combine(Cluster.Pki.Directory, name + "-acme.json");
            File.WriteAllText(config, $$"""
                { "Edge": { "Acme": {
                    "DirectoryUrl": "{{Pebble.DirectoryUrl}}", "DirectoryCertificateAuthority": "{{Pebble.DirectoryCaPath}}",
                    "StoragePath": "{{storage}}", "AcceptTermsOfService": true, "Challenges": [ "{{challenge}}" ],
                    "Names": [ {{string.Join(", ", names.Select(n => "\"" + n + "\""))}} ], "OnDemand": {{(onDemand ? "true" : "false")}},
                    "RetryDelay": "00:00:01", "MaxRetryDelay": "00:00:05", "OrderTimeout": "00:00:30", "DnsPropagationDelay": "00:00:00",
                    "ClusterKeyPath": "{{_clusterKey}}", "ClusterAnswerPropagation": "00:00:00.5" } } }
                """);
            return Cluster.StartEdgeAsync(name, "r-" + name, configPath: config, extraArguments:
                ["--listen", address, "--http-port", HttpPort.ToString(CultureInfo.InvariantCulture), "--https-port", HttpsPort.ToString(CultureInfo.InvariantCulture)]);
        }

        /// <summary>Waits until both edges present a certificate for <paramref name="name"/> that chains to pebble's root; returns them.</summary>
        public async Task<(X509Certificate2 AtA, X509Certificate2 AtB)> BothServeAsync(string name)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPem(await File.ReadAllTextAsync(await Pebble.WriteRootAsync()));
            X509Certificate2? atA = null, atB = null;
            await EdgeCluster.UntilAsync(async () =>
            {
                atA ??= await TrustedCertificateAsync(IPAddress.Parse("127.0.0.1"), name, roots);
                atB ??= await TrustedCertificateAsync(IPAddress.Parse("127.0.0.2"), name, roots);
                return atA is not null && atB is not null;
            }, IssueTimeout, $"both edges serve a pebble certificate for {name}");
            return (atA!, atB!);
        }

        public async ValueTask DisposeAsync()
        {
            await Cluster.DisposeAsync();
            await Pebble.DisposeAsync();
            await Named.DisposeAsync();
            _dump.Dispose();
        }

        /// <summary>The certificate the edge at <paramref name="address"/> presents for <paramref name="name"/> when it chains to <paramref name="roots"/>, else <c>null</c>.</summary>
        private async Task<X509Certificate2?> TrustedCertificateAsync(IPAddress address, string name, X509Certificate2Collection roots)
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(address, HttpsPort).WaitAsync(TimeSpan.FromSeconds(5));
                X509Certificate2? trusted = null;
                await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, received, _) =>
                {
                    if (certificate is null || received is null)
                    {
                        return false;
                    }

                    // Pebble's root, with the intermediate the edge sent: what curl --cacert does.
                    var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                    chain.ChainPolicy.ExtraStore.AddRange(received.ChainPolicy.ExtraStore);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    trusted = leaf.MatchesHostname(name) && chain.Build(leaf) ? leaf : null;
                    return true;
                });
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = name }).WaitAsync(TimeSpan.FromSeconds(5));
                return trusted;
            }
            catch (Exception ex) when (ex is SocketException or IOException or TimeoutException or System.Security.Authentication.AuthenticationException)
            {
                return null;
            }
        }
    }
}
