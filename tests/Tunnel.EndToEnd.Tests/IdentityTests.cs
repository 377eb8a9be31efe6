using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class IdentityTests
{
    [Fact]
    public async Task An_origin_certificate_from_another_CA_is_refused_in_the_handshake()
    {
        await using var harness = await TunnelHarness.StartAsync();
        using var stranger = new TestPki();
        var (certificate, key) = stranger.IssueOrigin(TunnelHarness.Hostname);

        var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: tunnel =>
        {
            tunnel.CertificatePath = certificate;
            tunnel.CertificateKeyPath = key;
        });

        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "HandshakeFailed"), TimeSpan.FromSeconds(10), "the edge logs the refused handshake");
        await Wait.UntilAsync(() => origin.Logs.Entries.Any(e => e.EventId.Name == "DialFailed"), TimeSpan.FromSeconds(10), "the origin logs the failed dial");
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "HandshakeFailed" && e.Message.Contains("refused", StringComparison.Ordinal));
        Assert.Empty(harness.Edge.Routes.Connections());
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
}
