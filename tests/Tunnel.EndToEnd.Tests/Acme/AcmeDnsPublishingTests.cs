using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>
/// The whole way of a new hostname with nothing done by hand: the origin registers it, the edge publishes it in
/// the operator's named (signed RFC 2136 updates), pebble resolves it through that named to validate HTTP-01,
/// and the first visitor gets a pebble certificate that curl verifies.
/// </summary>
public class AcmeDnsPublishingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_new_hostname_registered_through_the_tunnel_appears_in_named_and_is_served_over_https_with_a_pebble_certificate()
    {
        const string Name = "fresh.example.test";
        await using var bed = await AcmeTestBed.StartAsync([], acme =>
        {
            acme.OnDemand = true;
            acme.Challenges = ["http-01"];
        }, dnsZone: zone =>
        {
            zone.Addresses = ["127.0.0.1"];
            zone.Patterns = ["*.example.test"];
        });
        using var dump = new WriteOnDispose(output, () => bed.Named.Log + "\n[pebble]\n" + bed.Pebble!.Output);
        Assert.Empty(await bed.Named.DigAsync(Name, "A"));

        await bed.Harness.StartOriginAsync(hostnames: [Name]);
        await EdgeCluster.UntilAsync(async () => (await bed.Named.DigAsync(Name, "A")).SequenceEqual(["127.0.0.1"]), TimeSpan.FromSeconds(15), $"dig {Name} A shows 127.0.0.1");
        Assert.Equal(1, bed.Named.CountInLog($"/key {bed.Named.KeyName}: updating zone '{bed.Named.Zone}/IN': adding an RR at '{Name}' A 127.0.0.1"));
        Assert.Empty(bed.Certificates.Status());

        // The first visitor's handshake starts the on-demand order and waits for it: pebble can only reach the
        // edge's HTTP port for the challenge through the A record the edge just published.
        var result = await bed.CurlAsync(Name, await bed.Pebble!.WriteRootAsync());
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Hello from HelloOrigin", result.Stdout, StringComparison.Ordinal);
        var status = Assert.Single(bed.Certificates.Status());
        Assert.True(status.OnDemand);
        Assert.Equal([Name], status.Names);
        Assert.Contains("Pebble Intermediate CA", status.Issuer, StringComparison.Ordinal);
        Assert.Contains(bed.Harness.EdgeLogs.Entries, e => e.EventId.Name == "AcmeAuthorized" && e.Message.Contains("http-01", StringComparison.Ordinal));
    }
}
