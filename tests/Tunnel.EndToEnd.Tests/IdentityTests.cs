using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class IdentityTests
{
    [Fact]
    public async Task An_origin_certificate_from_another_CA_is_refused_with_a_reason_in_both_logs()
    {
        await using var harness = await TunnelHarness.StartAsync();
        using var stranger = new TestPki();
        var (certificate, key) = stranger.IssueOrigin(TunnelHarness.Hostname);

        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.CertificatePath = certificate;
            tunnel.CertificateKeyPath = key;
        });

        await AssertCertificateRefusedAsync(harness, origin, "not issued by a CA this edge trusts");
    }

    [Fact]
    public async Task The_origin_refuses_an_edge_whose_certificate_is_not_from_its_pinned_CA()
    {
        await using var harness = await TunnelHarness.StartAsync();
        using var stranger = new TestPki();

        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel => tunnel.EdgeCaPath = stranger.CaPath);

        await Wait.UntilAsync(() => origin.Logs.Entries.Any(e => e.EventId.Name == "DialFailed"), TimeSpan.FromSeconds(10), "the origin logs the failed dial");
        var failure = origin.Logs.Entries.First(e => e.EventId.Name == "DialFailed");
        Assert.Contains("Tls", failure.Message, StringComparison.Ordinal);
        Assert.Empty(harness.Edge.Routes.Connections());
    }

    [Fact]
    public async Task A_misconfigured_origin_fails_at_start_naming_every_problem()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.Edges = ["edge:notaport"];
            tunnel.Hostnames = ["bad host"];
            tunnel.CertificatePath = "/nonexistent/origin.pem";
            tunnel.CertificateKeyPath = null;
        }));

        Assert.Contains("invalid port", error.Message, StringComparison.Ordinal);
        Assert.Contains("bad host", error.Message, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/origin.pem", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_origin_certificate_is_refused_with_a_reason_in_both_logs()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var (certificate, key) = harness.Pki.IssueExpiredOrigin(TunnelHarness.Hostname);
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.CertificatePath = certificate;
            tunnel.CertificateKeyPath = key;
        });

        await AssertCertificateRefusedAsync(harness, origin, "expired");
    }

    [Fact]
    public async Task The_edge_server_certificate_used_as_a_client_certificate_is_refused_with_a_reason_in_both_logs()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.CertificatePath = harness.Pki.EdgeCertificatePath;
            tunnel.CertificateKeyPath = harness.Pki.EdgeKeyPath;
        });

        // The chain is fine; its extended key usage (server authentication only) is not.
        await AssertCertificateRefusedAsync(harness, origin, "not issued for client authentication");
    }

    [Fact]
    public async Task A_cluster_edges_certificate_valid_for_client_authentication_is_refused_as_an_origin()
    {
        await using var harness = await TunnelHarness.StartAsync();

        // Edge certificates carry client authentication for the inter-edge port; naming the hostname in
        // it must still not let it register.
        using var edgeCertificate = Tunnel.Edge.Identity.CertificateIssuer.IssueEdgeCertificate(harness.Pki.Ca, [TunnelHarness.Hostname], [System.Net.IPAddress.Loopback], TimeSpan.FromDays(1));
        var prefix = Path.Combine(harness.Pki.Directory, "peer-edge");
        Tunnel.Edge.Identity.CertificateIssuer.WritePem(edgeCertificate, prefix + ".pem", prefix + ".key");
        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.CertificatePath = prefix + ".pem";
            tunnel.CertificateKeyPath = prefix + ".key";
        });

        await AssertCertificateRefusedAsync(harness, origin, "is an edge's certificate");
    }

    [Fact]
    public async Task A_certificate_for_other_hostnames_is_refused_with_a_reason_in_both_logs()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync(hostnames: ["other.test"], certificateDomains: [TunnelHarness.Hostname], waitForConnections: false);

        var (edgeLog, originLog) = await RegistrationRefusedAsync(harness, origin, "hostname_not_authorized");
        Assert.Contains("does not cover 'other.test'", edgeLog, StringComparison.Ordinal);
        Assert.Contains("does not cover 'other.test'", originLog, StringComparison.Ordinal);
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
    }

    [Theory]
    [InlineData("b.example")]
    [InlineData("a.example.evil")]
    [InlineData("a.example")]
    [InlineData("x.y.a.example")]
    public async Task A_wildcard_credential_cannot_take_a_name_outside_its_one_label(string hostname)
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync(hostnames: [hostname], certificateDomains: ["*.a.example"], waitForConnections: false);

        var (edgeLog, _) = await RegistrationRefusedAsync(harness, origin, "hostname_not_authorized");
        Assert.Contains($"does not cover '{hostname}'", edgeLog, StringComparison.Ordinal);
        Assert.False(harness.Edge.Routes.HasRoute(hostname));
    }

    [Fact]
    public async Task A_wildcard_credential_serves_a_name_one_label_below()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(hostnames: ["x.a.example"], certificateDomains: ["*.a.example"]);
        var response = await Cli.RunAsync("curl", [.. harness.CurlResolve("x.a.example"), "-s", "-w", "%{http_code}", harness.VisitorUrl("/", "x.a.example")], TimeSpan.FromSeconds(10));
        Assert.EndsWith("200", response.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_credentials_for_one_hostname_serve_as_replicas()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var served = new int[2];
        for (var i = 0; i < 2; i++)
        {
            var replica = i;
            await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel => tunnel.HaConnections = 2, configureApp: app => app.Use((Microsoft.AspNetCore.Http.HttpContext context, Func<Task> next) =>
            {
                Interlocked.Increment(ref served[replica]);
                return next();
            }));
        }

        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(20), "both replicas' connections are registered");
        var credentials = harness.Edge.Routes.Connections().Select(c => c.CredentialId).Distinct().ToArray();
        Assert.Equal(2, credentials.Length);

        // The edge picks the connection with the fewest requests in flight, so concurrent requests
        // spread over both replicas (sequential ones would all tie on the first).
        using var client = new HttpClient();
        for (var round = 0; round < 10 && (Volatile.Read(ref served[0]) == 0 || Volatile.Read(ref served[1]) == 0); round++)
        {
            var statuses = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/stream?count=3") { Headers = { Host = TunnelHarness.Hostname } };
                using var response = await client.SendAsync(request);
                await response.Content.ReadAsStringAsync();
                return response.StatusCode;
            }));
            Assert.All(statuses, status => Assert.Equal(System.Net.HttpStatusCode.OK, status));
        }

        Assert.True(served[0] > 0 && served[1] > 0, $"replica 0 served {served[0]}, replica 1 served {served[1]}");
    }

    private static async Task AssertCertificateRefusedAsync(TunnelHarness harness, TunnelHarness.Origin origin, string reason)
    {
        var (edgeLog, originLog) = await RegistrationRefusedAsync(harness, origin, "certificate_refused");
        Console.WriteLine(edgeLog + "\n" + originLog);
        Assert.Contains(reason, edgeLog, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(reason, originLog, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
        Assert.Equal(0, harness.Edge.Services.GetRequiredService<Tunnel.Edge.Tunnels.TunnelListener>().TunnelPlaces);
    }

    internal static async Task<(string Edge, string Origin)> RegistrationRefusedAsync(TunnelHarness harness, TunnelHarness.Origin origin, string code)
    {
        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "RegistrationRefused" && e.Message.Contains(code, StringComparison.Ordinal)), TimeSpan.FromSeconds(15), $"the edge logs a {code} refusal");
        await Wait.UntilAsync(() => origin.Logs.Entries.Any(e => e.EventId.Name == "RegistrationRejected" && e.Message.Contains(code, StringComparison.Ordinal)), TimeSpan.FromSeconds(15), $"the origin logs the {code} rejection");
        return (harness.EdgeLogs.Entries.First(e => e.EventId.Name == "RegistrationRefused" && e.Message.Contains(code, StringComparison.Ordinal)).Message,
            origin.Logs.Entries.First(e => e.EventId.Name == "RegistrationRejected" && e.Message.Contains(code, StringComparison.Ordinal)).Message);
    }
}
