using System.Diagnostics;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Credentials change while tunnels live: a certificate expires, a revocation is made at another edge
/// of the cluster, the edge CA is retired or an edge certificate renewed. Real edges, real origins,
/// real etcd where a cluster is needed.
/// </summary>
public partial class CredentialsOverTimeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task A_tunnel_is_closed_when_its_certificate_expires_after_the_revocation_grace()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.RevokedConnectionGrace = Grace);

        // Long enough to register on a loaded machine, short enough to watch it run out.
        var (certificatePath, keyPath, notAfter) = harness.Pki.IssueShortLivedOrigin(TimeSpan.FromSeconds(8), TunnelHarness.Hostname);
        var origin = await harness.StartOriginAsync(configureTunnel: t =>
        {
            t.CertificatePath = certificatePath;
            t.CertificateKeyPath = keyPath;
            t.HaConnections = 2;
        });
        Assert.True(DateTimeOffset.UtcNow < notAfter, $"the origin registered only after its certificate expired at {notAfter:O}");

        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount == 0, notAfter - DateTimeOffset.UtcNow + Grace + TimeSpan.FromSeconds(10), "the expired certificate's tunnels are closed");
        var closedAfterExpiry = DateTimeOffset.UtcNow - notAfter;
        output.WriteLine($"closed {closedAfterExpiry.TotalSeconds:0.00} s after NotAfter (grace {Grace.TotalSeconds} s)");
        Assert.True(closedAfterExpiry >= Grace - TimeSpan.FromMilliseconds(200), $"closed {closedAfterExpiry.TotalSeconds:0.00} s after expiry, before the grace");
        Assert.True(closedAfterExpiry <= Grace + TimeSpan.FromSeconds(3), $"closed only {closedAfterExpiry.TotalSeconds:0.00} s after expiry");

        var withdrawn = harness.EdgeLogs.Entries.Where(e => e.EventId.Name == "TunnelCredentialWithdrawn").Select(e => e.Message).ToArray();
        Assert.Equal(2, withdrawn.Length);
        Assert.All(withdrawn, m => Assert.Contains("expired at", m, StringComparison.Ordinal));
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var metrics = await client.GetStringAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics");
        Assert.Equal(2, EdgeCluster.Series(metrics, "tunnel_edge_tunnels_withdrawn_total", ("reason", "expired")));

        // The origin's redials with the expired certificate are refused in the handshake's check.
        await TunnelRefusalTests.EdgeLogAsync(harness, "RegistrationRefused");
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
        GC.KeepAlive(origin);
    }
}
