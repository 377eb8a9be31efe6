using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge;
using Tunnel.Edge.Hosting;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class VisitorTlsTests
{
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(30);

    // A reload follows a file-system event after a short debounce; 10 s leaves room for a slow,
    // shared test machine without letting a broken reload pass unnoticed.
    private static readonly TimeSpan ReloadWait = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Visitor_https_connections_release_their_TLS_record_buffers_unless_turned_off_and_bodies_arrive_whole(bool release)
    {
        using var sites = new TestPki();
        var a = sites.IssueSite("a", "a.test");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [a];
            o.ReleaseIdleTlsBuffers = release;
        });
        await harness.StartOriginAsync(hostnames: ["a.test"]);
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;

        // Larger than many TLS records, so buffers are taken and given back again and again on the way.
        const int Size = 3 * 1024 * 1024 + 17;
        var expected = Enumerable.Range(0, Size).Select(i => HelloOrigin.HelloEndpoints.PatternByte(i)).ToArray();
        foreach (var flag in (string[])["--http1.1", "--http2"])
        {
            var file = Path.Combine(sites.Directory, $"download{flag}.bin");
            var result = await Cli.RunAsync("curl", ["-sS", "--fail", flag, "--resolve", $"a.test:{port}:127.0.0.1", "--cacert", sites.CaPath,
                "-o", file, $"https://a.test:{port}/download?bytes={Size}"], CurlTimeout);
            Assert.True(result.ExitCode == 0, Cli.Describe(result));
            var downloaded = await File.ReadAllBytesAsync(file);
            Assert.True(expected.AsSpan().SequenceEqual(downloaded), $"the {flag} download arrives whole");
        }

        var released = harness.Edge.Services.GetRequiredService<VisitorTlsBuffers>().Released;
        if (release)
        {
            Assert.True(released >= 2, $"both visitor connections release their buffers ({released})");
        }
        else
        {
            Assert.Equal(0, released);
        }

        Assert.DoesNotContain(harness.EdgeLogs.Entries, e => e.EventId.Name == "TlsBufferReleaseUnavailable");
    }

    [Fact]
    public async Task Https_port_serves_each_hostname_its_certificate_over_http1_and_http2_and_the_app_sees_https()
    {
        using var sites = new TestPki();
        var a = sites.IssueSite("a", "a.test");
        var b = sites.IssueSite("b", "b.test");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [a, b];
        });
        await harness.StartOriginAsync(hostnames: ["a.test", "b.test"]);
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;

        foreach (var host in (string[])["a.test", "b.test"])
        {
            foreach (var (flag, version) in new[] { ("--http1.1", "1.1"), ("--http2", "2") })
            {
                // --cacert without --insecure: curl itself checks that the certificate names the host.
                var result = await Cli.RunAsync("curl", ["-sS", "--fail", "-v", flag, "--resolve", $"{host}:{port}:127.0.0.1", "--cacert", sites.CaPath,
                    "-w", "\n%{http_version}", $"https://{host}:{port}/headers"], CurlTimeout);
                Assert.True(result.ExitCode == 0, Cli.Describe(result));
                Assert.Contains($"subject: CN={host}", result.Stderr, StringComparison.Ordinal);
                var lines = result.Stdout.Split('\n');
                Assert.Equal(version, lines[^1]);
                using var json = JsonDocument.Parse(string.Join('\n', lines[..^1]));
                Assert.Equal("https", json.RootElement.GetProperty("scheme").GetString());
                Assert.Equal($"{host}:{port}", json.RootElement.GetProperty("host").GetString());
                Assert.True(json.RootElement.GetProperty("viaTunnel").GetBoolean());
            }
        }
    }

    [Fact]
    public async Task Wildcard_certificate_covers_one_label_and_other_names_get_the_first_certificate()
    {
        using var sites = new TestPki();
        var fallback = sites.IssueSite("default", "default.test");
        var wildcard = sites.IssueSite("wildcard", "*.example.test");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [fallback, wildcard];
        });
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;

        Assert.Equal("CN=*.example.test", (await ServedCertificateAsync(port, "a.example.test")).Subject);
        Assert.Equal("CN=*.example.test", (await ServedCertificateAsync(port, "B.Example.Test")).Subject);
        Assert.Equal("CN=default.test", (await ServedCertificateAsync(port, "example.test")).Subject);
        Assert.Equal("CN=default.test", (await ServedCertificateAsync(port, "x.a.example.test")).Subject);
        Assert.Equal("CN=default.test", (await ServedCertificateAsync(port, "unknown.test")).Subject);
        Assert.Equal("CN=default.test", (await ServedCertificateAsync(port, serverName: null)).Subject);
    }

    [Fact]
    public async Task Replaced_certificate_files_are_served_to_new_handshakes_without_a_restart()
    {
        using var sites = new TestPki();
        var site = sites.IssueSite("site", "site.test");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [site];
        });
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;
        var before = (await ServedCertificateAsync(port, "site.test")).Thumbprint;

        // WritePem writes a temporary file and renames it over the old one, certificate then key.
        using var renewed = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["site.test", "www.site.test"], TimeSpan.FromDays(1));
        CertificateIssuer.WritePem(renewed, site.CertificatePath, site.KeyPath!);

        var served = await ServedWithinAsync(port, "site.test", renewed.Thumbprint);
        Assert.NotEqual(before, served);
        Assert.Equal(renewed.Thumbprint, (await ServedCertificateAsync(port, "www.site.test")).Thumbprint);
    }

    [Fact]
    public async Task Corrupt_replacement_keeps_the_previous_certificate_and_logs_an_error_naming_the_file()
    {
        using var sites = new TestPki();
        var site = sites.IssueSite("site", "site.test");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [site];
        });
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;
        var before = (await ServedCertificateAsync(port, "site.test")).Thumbprint;

        var temporary = site.CertificatePath + ".tmp";
        await File.WriteAllTextAsync(temporary, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
        File.Move(temporary, site.CertificatePath, overwrite: true);

        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "VisitorCertificateReloadFailed" && e.Message.Contains(site.CertificatePath, StringComparison.Ordinal)),
            ReloadWait, "the edge logs that the replacement does not load");
        Assert.Equal(before, (await ServedCertificateAsync(port, "site.test")).Thumbprint);

        // A good file afterwards is taken up again.
        using var fixedCertificate = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["site.test"], TimeSpan.FromDays(1));
        CertificateIssuer.WritePem(fixedCertificate, site.CertificatePath, site.KeyPath!);
        await ServedWithinAsync(port, "site.test", fixedCertificate.Thumbprint);
    }

    [Fact]
    public async Task Certificate_directory_serves_its_pairs_and_picks_up_a_pair_added_later()
    {
        using var sites = new TestPki();
        var directory = Directory.CreateDirectory(Path.Combine(sites.Directory, "sites")).FullName;
        using (var first = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["one.test"], TimeSpan.FromDays(1)))
        using (var second = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["two.test"], TimeSpan.FromDays(1)))
        {
            CertificateIssuer.WritePem(first, Path.Combine(directory, "1-one.pem"), Path.Combine(directory, "1-one.key"));
            CertificateIssuer.WritePem(second, Path.Combine(directory, "2-two.pem"), Path.Combine(directory, "2-two.key"));
        }

        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.CertificateDirectory = directory;
        });
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;
        Assert.Equal("CN=two.test", (await ServedCertificateAsync(port, "two.test")).Subject);
        Assert.Equal("CN=one.test", (await ServedCertificateAsync(port, "three.test")).Subject);

        using var third = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["three.test"], TimeSpan.FromDays(1));
        CertificateIssuer.WritePem(third, Path.Combine(directory, "3-three.pem"), Path.Combine(directory, "3-three.key"));
        await ServedWithinAsync(port, "three.test", third.Thumbprint);
    }

    [Fact]
    public async Task Plain_http_for_a_redirected_host_gets_308_to_https_and_other_hosts_do_not()
    {
        using var sites = new TestPki();
        var site = sites.IssueSite("site", "a.test", "b.test");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [site];
            o.HttpsRedirectHosts = ["a.test"];
        });
        var httpsPort = harness.Edge.VisitorHttpsEndPoint!.Port;

        var redirected = await Cli.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--data-binary", "x", .. harness.CurlResolve("a.test"),
            harness.VisitorUrl("/some/path?q=1&r=%20", "a.test")], CurlTimeout);
        Assert.True(redirected.ExitCode == 0, Cli.Describe(redirected));
        Assert.Equal($"308 https://a.test:{httpsPort}/some/path?q=1&r=%20", redirected.Stdout);

        // b.test has no tunnel, so the edge answers it itself: with its 502, not a redirect.
        var served = await Cli.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", .. harness.CurlResolve("b.test"), harness.VisitorUrl("/", "b.test")], CurlTimeout);
        Assert.Equal("502 ", served.Stdout);

        // Behind a port forward from 443 the Location names no port; '*' covers every host.
        var forwarded = await harness.StartExtraEdgeAsync("edge-443", "test-region", o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [site];
            o.HttpsRedirectHosts = ["*"];
            o.HttpsRedirectPort = 443;
        });
        var port = forwarded.VisitorEndPoint.Port;
        var anyHost = await Cli.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--http2-prior-knowledge",
            "--resolve", $"b.test:{port}:127.0.0.1", $"http://b.test:{port}/x"], CurlTimeout);
        Assert.Equal("308 https://b.test/x", anyHost.Stdout);
    }

    [Fact]
    public void Startup_with_a_missing_certificate_file_fails_naming_it()
    {
        using var pki = new TestPki();
        var missing = Path.Combine(pki.Directory, "no-such-site.pem");
        var options = new EdgeOptions
        {
            TunnelAddress = "127.0.0.1",
            TunnelPort = 0,
            VisitorAddress = "127.0.0.1",
            VisitorHttpPort = 0,
            VisitorHttpsPort = 0,
            CaCertificatePath = pki.CaPath,
            ServerCertificatePath = pki.EdgeCertificatePath,
            ServerKeyPath = pki.EdgeKeyPath,
            Certificates = [new VisitorCertificateFile { CertificatePath = missing, KeyPath = Path.Combine(pki.Directory, "no-such-site.key") }],
        };

        var error = Assert.Throws<InvalidOperationException>(() => EdgeServer.Create(options, logging => logging.ClearProviders()));
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
    }


    /// <summary>Polls with new handshakes until the edge serves the certificate with <paramref name="thumbprint"/>.</summary>
    private static async Task<string> ServedWithinAsync(int port, string serverName, string thumbprint)
    {
        var deadline = DateTime.UtcNow + ReloadWait;
        string served;
        do
        {
            served = (await ServedCertificateAsync(port, serverName)).Thumbprint;
            if (served == thumbprint)
            {
                return served;
            }

            await Task.Delay(50);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"The edge still served {served} for {serverName} after {ReloadWait.TotalSeconds:0} s, not {thumbprint}.");
        return served;
    }

    /// <summary>A fresh TLS handshake with the HTTPS port; returns the certificate the edge chose.</summary>
    internal static async Task<X509Certificate2> ServedCertificateAsync(int port, string? serverName)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
        await using var tls = new SslStream(client.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            // An empty target host sends no SNI.
            TargetHost = serverName ?? "",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
        }, timeout.Token);
        return new X509Certificate2(tls.RemoteCertificate!);
    }
}
