using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Transport;

namespace Tunnel.EndToEnd.Tests.Passthrough;

/// <summary>
/// TLS passthrough: the edge routes a TLS connection by the ClientHello's server name and relays its
/// bytes, so the handshake ends in the app with the app's certificate and ALPN; the edge never holds the
/// app's key. Real curl and openssl s_client on loopback.
/// </summary>
public class TlsPassthroughTests
{
    private const string Host = "secure.test";
    private const string EdgeSite = "edge-site.test";
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Openssl_and_curl_see_the_app_s_certificate_not_the_edge_s_and_h2_is_negotiated_end_to_end()
    {
        using var sites = new TestPki();
        using var appCertificate = CertificateIssuer.IssueSiteCertificate(sites.Ca, [Host], TimeSpan.FromDays(1));
        var edgeSite = sites.IssueSite("edge-site", EdgeSite);
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [edgeSite];
            o.Connections.TlsPassthrough = true;
        });
        await StartTlsOriginAsync(harness, appCertificate);
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;

        // What openssl sees for the passthrough name, and for a name the edge terminates itself.
        var served = await FingerprintAsync(port, Host);
        Assert.Equal(Fingerprint(appCertificate), served);
        Assert.NotEqual(served, await FingerprintAsync(port, EdgeSite));

        foreach (var (flag, version, protocol) in new[] { ("--http2", "2", "HTTP/2"), ("--http1.1", "1.1", "HTTP/1.1") })
        {
            var result = await Cli.RunAsync("curl", ["-sS", "--fail", flag, "--interface", "127.0.0.9", "--cacert", sites.CaPath, "--resolve", $"{Host}:{port}:127.0.0.1",
                "-w", "\n%{http_version}", $"https://{Host}:{port}/headers"], ToolTimeout);
            Assert.True(result.ExitCode == 0, Cli.Describe(result));
            var lines = result.Stdout.Split('\n');
            Assert.Equal(version, lines[^1]);
            using var json = JsonDocument.Parse(string.Join('\n', lines[..^1]));
            Assert.Equal(protocol, json.RootElement.GetProperty("protocol").GetString());
            Assert.Equal("https", json.RootElement.GetProperty("scheme").GetString());
            Assert.Equal("127.0.0.9", json.RootElement.GetProperty("remoteIp").GetString());
            Assert.Equal(nameof(TunnelMode.TlsPassthrough), json.RootElement.GetProperty("passthrough").GetString());
        }

        // The edge's own certificate store has nothing for the passthrough name: no key of the app's.
        var certificates = (VisitorCertificates)harness.Edge.Services.GetService(typeof(VisitorCertificates))!;
        Assert.DoesNotContain(Host, CertificateIssuer.GetDnsNames(certificates.Select(Host).TargetCertificate));
    }

    [Fact]
    public async Task A_response_with_connection_close_ends_the_visitor_connection_while_the_visitor_keeps_its_side_open()
    {
        using var sites = new TestPki();
        using var appCertificate = CertificateIssuer.IssueSiteCertificate(sites.Ca, [Host], TimeSpan.FromDays(1));
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Connections.TlsPassthrough = true;
        });
        await StartTlsOriginAsync(harness, appCertificate);

        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, harness.Edge.VisitorHttpsEndPoint!.Port);
        await using var tls = new System.Net.Security.SslStream(client.GetStream());
        await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = Host,
            ApplicationProtocols = [System.Net.Security.SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null && certificate.GetCertHashString() == appCertificate.GetCertHashString(),
        });
        await tls.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Host}\r\nConnection: close\r\n\r\n"));

        // The visitor never closes its side: the end must come from the app's close, through the edge.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(8));
        using var reader = new StreamReader(tls);
        var answer = await reader.ReadToEndAsync(timeout.Token);
        Assert.StartsWith("HTTP/1.1 200", answer, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"the connection ended {watch.Elapsed.TotalSeconds:0.0} s after the request");
    }

    [Fact]
    public async Task A_tls_passthrough_route_is_refused_at_registration_when_the_edge_does_not_allow_it()
    {
        using var sites = new TestPki();
        using var appCertificate = CertificateIssuer.IssueSiteCertificate(sites.Ca, [Host], TimeSpan.FromDays(1));
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await StartTlsOriginAsync(harness, appCertificate, wait: false);
        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "RegistrationRefused" && e.Message.Contains("connection_mode_not_allowed", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(20), "the edge refuses the registration, naming the reason");
        await Wait.UntilAsync(() => origin.Logs.Entries.Any(e => e.EventId.Name == "RegistrationRejected" && e.Message.Contains("TlsPassthrough is off", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(20), "the origin logs the refusal with the edge's reason");
    }

    [Fact]
    public async Task A_host_entry_that_allows_only_http_passthrough_refuses_a_tls_route_for_that_host()
    {
        using var sites = new TestPki();
        using var appCertificate = CertificateIssuer.IssueSiteCertificate(sites.Ca, [Host], TimeSpan.FromDays(1));
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Connections.TlsPassthrough = true;
            o.Hosts[Host] = new Tunnel.Edge.Access.EdgeHostOptions { ConnectionModes = ["http"] };
        });
        await StartTlsOriginAsync(harness, appCertificate, wait: false);
        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "RegistrationRefused" && e.Message.Contains($"Edge:Hosts:{Host}:ConnectionModes", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(20), "the edge refuses the mode the host entry does not allow, naming the setting");
    }

    [Fact]
    public void An_unknown_connection_mode_in_a_host_entry_stops_the_edge_at_start_naming_it()
    {
        var options = new Tunnel.Edge.EdgeOptions { VisitorHttpPort = 0, TunnelPort = 0, AdminPort = -1 };
        options.Hosts["a.test"] = new Tunnel.Edge.Access.EdgeHostOptions { ConnectionModes = ["udp"] };
        var error = Assert.Throws<InvalidOperationException>(() => Tunnel.Edge.Hosting.EdgeServer.Create(options));
        Assert.Contains("Hosts:a.test:ConnectionModes: 'udp' is not a connection mode (http, tls, tcp).", error.Message, StringComparison.Ordinal);
    }

    internal static Task<TunnelHarness.Origin> StartTlsOriginAsync(TunnelHarness harness, X509Certificate2 certificate, bool wait = true) =>
        harness.StartOriginAsync(
            certificateDomains: [TunnelHarness.Hostname, Host],
            waitForConnections: wait,
            configureBuilder: builder => builder.WebHost.ConfigureKestrel(kestrel =>
                kestrel.ListenTunnel(Host, TunnelMode.TlsPassthrough, listen => listen.UseHttps(certificate))));

    private static async Task<string> FingerprintAsync(int port, string serverName)
    {
        var result = await Cli.BashAsync(
            $"openssl s_client -connect 127.0.0.1:{port} -servername {serverName} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256", ToolTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        return result.Stdout.Trim().Split('=')[^1].Replace(":", "", StringComparison.Ordinal);
    }

    private static string Fingerprint(X509Certificate2 certificate) => Convert.ToHexString(SHA256.HashData(certificate.RawData));
}
