using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Tunnel.Protocol;
using Tunnel.Transport.Internal;
using Tunnel.Transport.Tests.Slots;

namespace Tunnel.Transport.Tests.Readiness;

/// <summary>
/// <see cref="TunnelReadinessMonitor"/> on a fake clock, with ASP.NET Core's own health check service
/// running checks whose answer the test sets.
/// </summary>
public sealed class TunnelReadinessMonitorTests : IAsyncDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly RecordingTimeProvider _time = new();
    private readonly FakeLogger<TunnelReadinessMonitor> _logger = new();
    private readonly SettableCheck _database = new();
    private readonly SettableCheck _untagged = new();
    private readonly TunnelReadiness _readiness = new();
    private readonly ServiceProvider _services;
    private readonly MetricCollector<int> _ready;
    private readonly MetricCollector<long> _changes;
    private TunnelReadinessMonitor? _monitor;

    public TunnelReadinessMonitorTests()
    {
        var services = new ServiceCollection().AddLogging().AddMetrics();
        services.AddHealthChecks()
            .AddCheck("database", _database, tags: ["ready"])
            .AddCheck("cache", _untagged);
        _services = services.BuildServiceProvider();
        var meters = _services.GetRequiredService<IMeterFactory>();
        _ready = new MetricCollector<int>(meters, TunnelMetrics.MeterName, "tunnel.ready");
        _changes = new MetricCollector<long>(meters, TunnelMetrics.MeterName, "tunnel.readiness.changes");
    }

    [Fact]
    public async Task Turns_not_ready_one_interval_after_a_ready_check_fails_and_ready_again_one_after_it_recovers()
    {
        await StartAsync();
        await _time.WaitForTimerAsync(Interval);
        Assert.True(_readiness.IsReady);
        Assert.Equal(1, _database.Calls);

        _database.Result = HealthCheckResult.Unhealthy("connection refused");
        await AdvanceOneIntervalAsync();

        Assert.False(_readiness.IsReady);
        Assert.Equal(AnchorBeat.NotReady, _readiness.Beat);
        Assert.Equal(0, ObservedReady());
        var notReady = Assert.Single(_logger.Collector.GetSnapshot(), r => r.Id.Id == 95);
        Assert.Contains("database: connection refused", notReady.Message, StringComparison.Ordinal);

        // Still failing: no second change, no second line.
        await AdvanceOneIntervalAsync();
        Assert.False(_readiness.IsReady);
        Assert.Single(_changes.GetMeasurementSnapshot());

        _database.Result = HealthCheckResult.Healthy();
        await AdvanceOneIntervalAsync();

        Assert.True(_readiness.IsReady);
        Assert.Equal(AnchorBeat.Ready, _readiness.Beat);
        Assert.Equal(1, ObservedReady());
        var readyAgain = Assert.Single(_logger.Collector.GetSnapshot(), r => r.Id.Id == 96);
        Assert.Contains("after 2.0 s", readyAgain.Message, StringComparison.Ordinal);
        Assert.Equal([false, true], _changes.GetMeasurementSnapshot().Select(m => (bool)m.Tags["tunnel.ready"]!));
    }

    [Fact]
    public async Task A_degraded_ready_check_and_an_unhealthy_check_without_the_tag_leave_the_app_ready()
    {
        _database.Result = HealthCheckResult.Degraded("slow");
        _untagged.Result = HealthCheckResult.Unhealthy("cold");
        await StartAsync();
        await _time.WaitForTimerAsync(Interval);
        await AdvanceOneIntervalAsync();

        Assert.True(_readiness.IsReady);
        Assert.Equal(2, _database.Calls);
        Assert.Equal(0, _untagged.Calls);
        Assert.DoesNotContain(_logger.Collector.GetSnapshot(), r => r.Id.Id == 95);
        Assert.Empty(_changes.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task A_ready_check_that_never_answers_counts_as_not_ready_after_the_check_timeout_and_the_loop_goes_on()
    {
        _database.Hang = true;
        var changed = _readiness.Changed;
        await StartAsync();
        await _time.WaitForTimerAsync(TunnelReadinessMonitor.CheckTimeout);

        _time.Advance(TunnelReadinessMonitor.CheckTimeout);
        await changed.WaitAsync(SlotHarness.Patience);

        Assert.False(_readiness.IsReady);
        Assert.Contains(_logger.Collector.GetSnapshot(), r => r.Id.Id == 95 && r.Message.Contains("did not answer within 5 s", StringComparison.Ordinal));

        _database.Hang = false;
        await _time.WaitForTimerAsync(Interval);
        await AdvanceOneIntervalAsync();
        Assert.True(_readiness.IsReady);
    }

    [Theory]
    [InlineData("", 1000, "Tunnel:ReadinessTag is empty")]
    [InlineData(null, 1000, "Tunnel:ReadinessTag is empty")]
    [InlineData("ready", 0, "Tunnel:ReadinessCheckInterval turns it off")]
    [InlineData("ready", -1, "Tunnel:ReadinessCheckInterval turns it off")]
    public async Task Runs_no_check_when_turned_off(string? tag, int intervalMilliseconds, string reason)
    {
        _database.Result = HealthCheckResult.Unhealthy("down");
        await StartAsync(o =>
        {
            o.ReadinessTag = tag;
            o.ReadinessCheckInterval = TimeSpan.FromMilliseconds(intervalMilliseconds);
        });
        await _monitor!.ExecuteTask!.WaitAsync(SlotHarness.Patience);

        Assert.Equal(0, _database.Calls);
        Assert.True(_readiness.IsReady);
        Assert.Contains(_logger.Collector.GetSnapshot(), r => r.Id.Id == 98 && r.Message.Contains(reason, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_app_without_health_checks_is_always_ready()
    {
        await StartAsync(healthChecks: null);
        await _monitor!.ExecuteTask!.WaitAsync(SlotHarness.Patience);

        Assert.True(_readiness.IsReady);
        Assert.Contains(_logger.Collector.GetSnapshot(), r => r.Id.Id == 98 && r.Message.Contains("AddHealthChecks", StringComparison.Ordinal));
    }

    [Fact]
    public void A_negative_check_interval_is_refused_at_start()
    {
        var result = new TunnelOptionsValidator().Validate(null, new TunnelOptions { ReadinessCheckInterval = TimeSpan.FromSeconds(-2) });

        Assert.Contains("Tunnel:ReadinessCheckInterval must not be negative (zero turns readiness following off).", result.Failures!);
    }

    public async ValueTask DisposeAsync()
    {
        if (_monitor is not null)
        {
            _database.Hang = false;
            await _monitor.StopAsync(CancellationToken.None);
            _monitor.Dispose();
        }

        _ready.Dispose();
        _changes.Dispose();
        await _services.DisposeAsync();
    }

    private Task StartAsync(Action<TunnelOptions>? configure = null) =>
        StartAsync(_services.GetRequiredService<HealthCheckService>(), configure);

    private async Task StartAsync(HealthCheckService? healthChecks, Action<TunnelOptions>? configure = null)
    {
        var options = new TunnelOptions { ReadinessCheckInterval = Interval };
        configure?.Invoke(options);
        _monitor = new TunnelReadinessMonitor(_readiness, new FixedOptionsMonitor(options), _logger, _time, _services.GetRequiredService<IMeterFactory>(), healthChecks);
        await _monitor.StartAsync(CancellationToken.None);
    }

    /// <summary>Lets the wait between checks run out, then waits until the next check has run and the next wait began.</summary>
    private async Task AdvanceOneIntervalAsync()
    {
        _time.Advance(Interval);
        await _time.WaitForTimerAsync(Interval);
    }

    private int ObservedReady()
    {
        _ready.RecordObservableInstruments();
        return _ready.LastMeasurement!.Value;
    }

    /// <summary>A health check that answers what the test set, or never (ignoring its token) while <see cref="Hang"/>.</summary>
    private sealed class SettableCheck : IHealthCheck
    {
        private int _calls;

        public volatile bool Hang;

        public HealthCheckResult Result { get; set; } = HealthCheckResult.Healthy();

        public int Calls => Volatile.Read(ref _calls);

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _calls);
            for (var i = 0; Hang && i < 1000; i++)
            {
                await Task.Delay(10, CancellationToken.None);
            }

            return Result;
        }
    }

    private sealed class FixedOptionsMonitor(TunnelOptions value) : IOptionsMonitor<TunnelOptions>
    {
        public TunnelOptions CurrentValue => value;

        public TunnelOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<TunnelOptions, string?> listener) => null;
    }
}
