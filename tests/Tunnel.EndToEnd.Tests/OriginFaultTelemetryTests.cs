using System.Diagnostics.Metrics;
using Tunnel.Edge.Telemetry;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// What an operator sees when the edge ends a tunnel for its origin's fault: a warning naming the
/// tunnel, the connector and what the origin did (event 200), and the counter
/// <c>tunnel.edge.tunnel.protocol_errors</c> by <c>error.type</c>. The attacks themselves, with the
/// edge as a process and its memory measured, are in Tunnel.Faults (HostileOriginTests).
/// </summary>
public class OriginFaultTelemetryTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_tunnel_ended_for_its_origin_s_PUSH_PROMISE_is_logged_and_counted_by_error_type()
    {
        var counted = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EdgeMetrics.MeterName && instrument.Name == "tunnel.edge.tunnel.protocol_errors")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "error.type")
                {
                    lock (counted)
                    {
                        counted.Add((string)tag.Value!);
                    }
                }
            }
        });
        listener.Start();

        await using var harness = await TunnelHarness.StartAsync();
        await using var hostile = await HostileOrigin.ConnectAsync(harness.Pki, harness.Edge.TunnelEndPoint, TunnelHarness.Hostname);
        var goAway = hostile.ReadUntilGoAwayAsync(Generous);

        // The edge sends SETTINGS_ENABLE_PUSH=0, so a PUSH_PROMISE is a connection error (RFC 9113 section 8.4).
        await hostile.WriteFrameAsync(HostileOrigin.PushPromise, HostileOrigin.EndHeaders, 1, [0, 0, 0, 2, 0x82, 0x86, 0x84]);
        Assert.Equal(0x1u /* PROTOCOL_ERROR */, await goAway);

        await Wait.UntilAsync(() =>
        {
            lock (counted)
            {
                return counted.Contains("push_promise");
            }
        }, Generous, "tunnel.edge.tunnel.protocol_errors counts error.type push_promise");
        var logged = Assert.Single(harness.EdgeLogs.Entries, e => e.EventId.Id == 200);
        Assert.Equal("TunnelOriginFault", logged.EventId.Name);
        Assert.Contains(hostile.ConnectionId, logged.Message, StringComparison.Ordinal);
        Assert.Contains("(push_promise)", logged.Message, StringComparison.Ordinal);
        Assert.Contains("PUSH_PROMISE", logged.Message, StringComparison.Ordinal);
    }
}
