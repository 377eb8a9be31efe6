using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Transport;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

public class TelemetryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Metrics_count_attempts_and_redials_and_connections_return_to_four_after_a_drop()
    {
        var exporter = new CollectingMetricExporter();
        using var reader = new BaseExportingMetricReader(exporter);
        using var meters = Sdk.CreateMeterProviderBuilder().AddMeter("Tunnel.Transport").AddReader(reader).Build();

        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();
        // The gauge reads the status, which an event updates just before the counters and histograms.
        await Wait.UntilAsync(() => Flush(() => exporter.Sum("tunnel.connections", "tunnel.connection.state=registered") == 4 && exporter.Sum("tunnel.dial.duration") == 12), TimeSpan.FromSeconds(10), "the connections gauge shows 4 and every dial phase is recorded");
        Assert.Equal(4, exporter.Sum("tunnel.connection.attempts", "tunnel.attempt.result=registered"));
        Assert.Equal(0, exporter.Sum("tunnel.redials"));
        Assert.Equal(4, exporter.Sum("tunnel.connections", "tunnel.connection.state=registered", "tunnel.edge.name=test-edge", "tunnel.edge.region=test-region"));
        Assert.Equal(12, exporter.Sum("tunnel.dial.duration"));

        await harness.Edge.Routes.Connections().First().DisposeAsync();
        await Wait.UntilAsync(() => Flush(() => exporter.Sum("tunnel.connection.attempts", "tunnel.attempt.result=registered") == 5), TimeSpan.FromSeconds(10), "one more attempt is counted");
        await Wait.UntilAsync(() => Flush(() => exporter.Sum("tunnel.connections", "tunnel.connection.state=registered") == 4 && exporter.Sum("tunnel.dial.duration") == 15), TimeSpan.FromSeconds(10), "the connections gauge is back at 4");
        output.WriteLine(exporter.Dump());
        Assert.Equal(1, exporter.Sum("tunnel.redials"));
        Assert.Equal(1, exporter.Sum("tunnel.connection.lifetime"));

        bool Flush(Func<bool> condition)
        {
            reader.Collect();
            return condition();
        }
    }

    [Fact]
    public async Task A_refused_registration_is_counted_with_its_reason()
    {
        var exporter = new CollectingMetricExporter();
        using var reader = new BaseExportingMetricReader(exporter);
        using var meters = Sdk.CreateMeterProviderBuilder().AddMeter("Tunnel.Transport").AddReader(reader).Build();

        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(hostnames: ["other.test"], certificateDomains: ["hello.test"], waitForConnections: false);
        await Wait.UntilAsync(() =>
        {
            reader.Collect();
            return exporter.Sum("tunnel.registration.rejections", "tunnel.rejection.reason=hostname_not_authorized") >= 4;
        }, TimeSpan.FromSeconds(10), "the refusals are counted");
        Assert.True(exporter.Sum("tunnel.connection.attempts", "tunnel.attempt.result=rejected", "error.type=hostname_not_authorized") >= 4);
        Assert.Equal(4, exporter.Sum("tunnel.connections", "tunnel.connection.state=connecting"));
    }

    [Fact]
    public async Task Health_is_healthy_degraded_and_unhealthy_with_all_some_and_no_connections()
    {
        await using var healthy = await TunnelHarness.StartAsync();
        var allUp = await healthy.StartOriginAsync(configureBuilder: b => b.Services.AddHealthChecks().AddTunnel());
        var report = await CheckAsync(allUp);
        Assert.Equal(HealthStatus.Healthy, report.Status);
        Assert.Contains("4 of 4", report.Description, StringComparison.Ordinal);

        // The edge takes two connections and refuses the rest as overloaded.
        await using var crowded = await TunnelHarness.StartAsync(o => o.MaxTunnelConnections = 2);
        var someUp = await crowded.StartOriginAsync(waitForConnections: false, configureBuilder: b => b.Services.AddHealthChecks().AddTunnel());
        await Wait.UntilAsync(() => CheckAsync(someUp).Result.Status == HealthStatus.Degraded && someUp.App.Services.GetRequiredService<ITunnelStatus>().LastError is not null, TimeSpan.FromSeconds(10), "the health check reports Degraded");
        report = await CheckAsync(someUp);
        Assert.Contains("2 of 4", report.Description, StringComparison.Ordinal);
        Assert.Contains("overloaded", report.Description, StringComparison.Ordinal);

        await using var refusing = await TunnelHarness.StartAsync();
        var noneUp = await refusing.StartOriginAsync(hostnames: ["other.test"], certificateDomains: ["hello.test"], waitForConnections: false,
            configureBuilder: b => b.Services.AddHealthChecks().AddTunnel());
        await Wait.UntilAsync(() => CheckAsync(noneUp).Result.Description?.Contains("hostname_not_authorized", StringComparison.Ordinal) == true, TimeSpan.FromSeconds(10), "the refusal shows in the health check");
        report = await CheckAsync(noneUp);
        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.Contains("other.test", report.Description, StringComparison.Ordinal);

        static async Task<HealthReportEntry> CheckAsync(TunnelHarness.Origin origin)
        {
            var health = await origin.App.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
            return health.Entries["tunnel"];
        }
    }

    [Fact]
    public async Task The_status_shows_each_slot_with_its_edge_and_the_recent_events()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync();
        var status = origin.App.Services.GetRequiredService<ITunnelStatus>();
        await Wait.UntilAsync(() => status.RegisteredConnections == 4, TimeSpan.FromSeconds(10), "the status shows 4 registered slots");

        Assert.Equal(4, status.DesiredConnections);
        Assert.All(status.Slots, s => Assert.Equal(("test-edge", "test-region"), (s.EdgeName, s.EdgeRegion)));
        Assert.Equal(4, status.RecentEvents.Count(e => e.Kind == TunnelConnectionEventKind.Registered));
        Assert.Null(status.LastError);
    }
}
