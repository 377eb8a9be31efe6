using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

/// <summary>The visitor certificate directory against files that are not certificates: devices, FIFOs, huge files.</summary>
public class VisitorCertificateDirectoryTests
{
    [Fact]
    public async Task The_certificate_directory_skips_a_FIFO_a_link_to_dev_zero_and_an_oversized_file_and_serves_the_rest()
    {
        using var sites = new TestPki();
        var directory = Path.Combine(sites.Directory, "certificates");
        Directory.CreateDirectory(directory);
        using var site = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["site.test"], TimeSpan.FromDays(1));
        using var big = CertificateIssuer.IssueSiteCertificate(sites.Ca, ["big.test"], TimeSpan.FromDays(1));
        CertificateIssuer.WritePem(site, Path.Combine(directory, "d-site.pem"), Path.Combine(directory, "d-site.key"));

        // Each beside a real key, so only the certificate file is wrong. Name order puts them first: an
        // edge that opens the FIFO waits for a writer for ever, one that reads /dev/zero never ends.
        CertificateIssuer.WritePem(site, Path.Combine(directory, "a-fifo.pem"), Path.Combine(directory, "a-fifo.key"));
        File.Delete(Path.Combine(directory, "a-fifo.pem"));
        var fifo = await Cli.RunAsync("mkfifo", [Path.Combine(directory, "a-fifo.pem")], TimeSpan.FromSeconds(10));
        Assert.True(fifo.ExitCode == 0, Cli.Describe(fifo));
        CertificateIssuer.WritePem(site, Path.Combine(directory, "b-zero.pem"), Path.Combine(directory, "b-zero.key"));
        File.Delete(Path.Combine(directory, "b-zero.pem"));
        File.CreateSymbolicLink(Path.Combine(directory, "b-zero.pem"), "/dev/zero");

        // A valid certificate padded past the limit: it would load, but is not read.
        CertificateIssuer.WritePem(big, Path.Combine(directory, "c-big.pem"), Path.Combine(directory, "c-big.key"));
        File.AppendAllText(Path.Combine(directory, "c-big.pem"), new string('#', (int)VisitorCertificates.MaxFileBytes) + "\n");

        // On another thread: loading the certificates is synchronous, and must not hang the test.
        var starting = Task.Run(() => TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.CertificateDirectory = directory;
        }));
        await using var harness = await starting.WaitAsync(TimeSpan.FromSeconds(30));
        var port = harness.Edge.VisitorHttpsEndPoint!.Port;

        Assert.Equal("CN=site.test", (await VisitorTlsTests.ServedCertificateAsync(port, "site.test")).Subject);
        Assert.Equal("CN=site.test", (await VisitorTlsTests.ServedCertificateAsync(port, "big.test")).Subject);
        var skipped = harness.EdgeLogs.Entries.Where(e => e.EventId.Name == "VisitorCertificateSkipped").Select(e => e.Message).ToList();
        Assert.Equal(3, skipped.Count);
        Assert.Contains(skipped, m => m.Contains("a-fifo.pem", StringComparison.Ordinal) && m.Contains("not a regular file", StringComparison.Ordinal));
        Assert.Contains(skipped, m => m.Contains("b-zero.pem", StringComparison.Ordinal) && m.Contains("/dev/zero", StringComparison.Ordinal));
        Assert.Contains(skipped, m => m.Contains("c-big.pem", StringComparison.Ordinal) && m.Contains("over the limit of 1048576 bytes", StringComparison.Ordinal));

        var metrics = await Cli.RunAsync("curl", ["-s", $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics"], TimeSpan.FromSeconds(10));
        Assert.Contains("tunnel_edge_visitor_certificates_skipped{reason=\"not_regular_file\"} 2", metrics.Stdout, StringComparison.Ordinal);
        Assert.Contains("tunnel_edge_visitor_certificates_skipped{reason=\"too_large\"} 1", metrics.Stdout, StringComparison.Ordinal);

        // A later check (the watcher's, the periodic one) does not log them again.
        harness.Edge.Services.GetRequiredService<VisitorCertificates>().Reload();
        Assert.Equal(3, harness.EdgeLogs.Entries.Count(e => e.EventId.Name == "VisitorCertificateSkipped"));
    }
}
