using Tunnel.Edge;

namespace Tunnel.EndToEnd.Tests.Http2;

/// <summary>
/// The flow-control windows the edge grants an origin (Limits:TunnelStreamWindowSize and
/// TunnelConnectionWindowSize), read off the wire by a raw HTTP/2 origin: the defaults, values raised for
/// a long link, and values the edge refuses at start.
/// </summary>
public class FlowControlWindowTests
{
    private const ushort InitialWindowSize = 4;
    private const int Http2InitialWindow = 65_535;

    [Fact]
    public async Task The_edge_grants_each_tunnel_stream_1_MiB_and_each_tunnel_connection_16_MiB_by_default()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var origin = await HostileOrigin.ConnectAsync(harness.Pki, harness.Edge.TunnelEndPoint, TunnelHarness.Hostname);

        Assert.Equal(1024u * 1024, origin.EdgeSettings[InitialWindowSize]);
        Assert.Equal((16L * 1024 * 1024) - Http2InitialWindow, origin.EdgeConnectionWindowIncrement);
    }

    [Fact]
    public async Task Windows_raised_for_a_long_link_are_what_the_edge_grants()
    {
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.Limits.TunnelStreamWindowSize = 8 * 1024 * 1024;
            o.Limits.TunnelConnectionWindowSize = 64 * 1024 * 1024;
        });
        await using var origin = await HostileOrigin.ConnectAsync(harness.Pki, harness.Edge.TunnelEndPoint, TunnelHarness.Hostname);

        Assert.Equal(8u * 1024 * 1024, origin.EdgeSettings[InitialWindowSize]);
        Assert.Equal((64L * 1024 * 1024) - Http2InitialWindow, origin.EdgeConnectionWindowIncrement);
    }

    [Fact]
    public void Windows_HTTP2_cannot_carry_stop_the_edge_at_start_with_each_named()
    {
        var options = new EdgeOptions { TunnelPort = 0, VisitorHttpPort = 0, AdminPort = -1 };
        options.Limits.TunnelStreamWindowSize = 1000;
        options.Limits.TunnelConnectionWindowSize = 500;
        var error = Assert.Throws<InvalidOperationException>(() => Tunnel.Edge.Hosting.EdgeServer.Create(options));
        Assert.Contains("Limits:TunnelStreamWindowSize is 1000", error.Message, StringComparison.Ordinal);
        Assert.Contains("Limits:TunnelConnectionWindowSize is 500", error.Message, StringComparison.Ordinal);
    }
}
