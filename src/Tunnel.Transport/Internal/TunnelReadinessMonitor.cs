using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Runs the app's health checks tagged <see cref="TunnelOptions.ReadinessTag"/> every
/// <see cref="TunnelOptions.ReadinessCheckInterval"/> and sets <see cref="TunnelReadiness"/>: Unhealthy is
/// not ready, Healthy and Degraded are ready. Each change is logged and counted; the anchors send it.
/// </summary>
internal sealed class TunnelReadinessMonitor : BackgroundService
{
    // A check that has not answered within this long counts as Unhealthy: a dependency that hangs is no
    // more ready than one that fails, and the loop must go on to notice when it recovers.
    internal static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(5);

    // Descriptions come from the app's checks; a log line needs the gist, not a stack of them.
    private const int MaxDescriptionLength = 200;

    private readonly TunnelReadiness _readiness;
    private readonly IOptionsMonitor<TunnelOptions> _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly HealthCheckService? _healthChecks;
    private readonly Counter<long> _changes;
    private long _notReadySince;

    public TunnelReadinessMonitor(TunnelReadiness readiness, IOptionsMonitor<TunnelOptions> options, ILogger<TunnelReadinessMonitor> logger, TimeProvider time, IMeterFactory meterFactory, HealthCheckService? healthChecks = null)
    {
        _readiness = readiness;
        _options = options;
        _logger = logger;
        _time = time;
        _healthChecks = healthChecks;
        var meter = meterFactory.Create(TunnelMetrics.MeterName);
        meter.CreateObservableGauge("tunnel.ready", () => readiness.IsReady ? 1 : 0, "{ready}", "1 while the app's readiness checks let the edges send this replica requests, 0 while they report Unhealthy.");
        _changes = meter.CreateCounter<long>("tunnel.readiness.changes", "{change}", "Changes of the app's readiness, by tunnel.ready (the new state).");
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = _options.CurrentValue;
        var interval = options.ReadinessCheckInterval;
        if (WhyNotFollowing(options.ReadinessTag, interval) is { } reason)
        {
            ReadinessLog.NotFollowingReadiness(_logger, reason);
            return;
        }

        ReadinessLog.FollowingReadiness(_logger, options.ReadinessTag!, interval.TotalMilliseconds);
        try
        {
            while (true)
            {
                await CheckOnceAsync(options.ReadinessTag!, stoppingToken).ConfigureAwait(false);
                await Task.Delay(interval, _time, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private string? WhyNotFollowing(string? tag, TimeSpan interval) =>
        string.IsNullOrEmpty(tag) ? "Tunnel:ReadinessTag is empty"
        : interval <= TimeSpan.Zero || interval == Timeout.InfiniteTimeSpan ? "Tunnel:ReadinessCheckInterval turns it off"
        : _healthChecks is null ? "the app adds no health checks (services.AddHealthChecks())"
        : null;

    /// <summary>Runs the tagged checks once and applies what they say.</summary>
    internal async Task CheckOnceAsync(string tag, CancellationToken cancellationToken)
    {
        string? notReady;
        using var timeout = new CancellationTokenSource(CheckTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            // WaitAsync: a check that ignores its token must not stop the loop that notices recovery.
            var report = await _healthChecks!.CheckHealthAsync(r => r.Tags.Contains(tag), linked.Token).WaitAsync(linked.Token).ConfigureAwait(false);
            notReady = report.Status == HealthStatus.Unhealthy ? Describe(report) : null;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            notReady = $"the checks did not answer within {CheckTimeout.TotalSeconds:0} s";
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            ReadinessLog.ReadinessCheckFault(_logger, ex);
            notReady = "the checks failed: " + ex.Message;
        }

        Apply(notReady);
    }

    private void Apply(string? notReady)
    {
        if (!_readiness.Set(notReady is null))
        {
            return;
        }

        if (notReady is null)
        {
            ReadinessLog.ReadyAgain(_logger, _time.GetElapsedTime(_notReadySince).TotalSeconds);
        }
        else
        {
            _notReadySince = _time.GetTimestamp();
            ReadinessLog.NotReady(_logger, notReady);
        }

        _changes.Add(1, new KeyValuePair<string, object?>("tunnel.ready", notReady is null));
    }

    private static string Describe(HealthReport report) => string.Join("; ", report.Entries
        .Where(e => e.Value.Status == HealthStatus.Unhealthy)
        .Select(e => e.Value.Description is { Length: > 0 } description
            ? $"{e.Key}: {(description.Length > MaxDescriptionLength ? description[..MaxDescriptionLength] + "..." : description)}"
            : e.Key));
}
