using Tunnel.Edge.Dial.Dialing;

namespace Tunnel.Edge.Dial.Redial;

/// <summary>
/// Decides how long one connection slot waits before its next dial. Not thread-safe: one per slot.
/// </summary>
/// <remarks>
/// Full jitter (a uniform random wait between zero and the exponential step) spreads many origins
/// that restart together, so they never reach the edge in lock-step. The very first retry after a
/// healthy period is short (up to a quarter of <see cref="RedialBackoffOptions.BaseDelay"/>), because
/// the slot moves to another edge and a visitor may be waiting. A refusal that will not change by
/// itself (non-retryable) waits between half the cap and the cap. A refusal's retry-after belongs to
/// the edge, not the slot: <see cref="Discovery.EdgeSelector"/> keeps every slot off that edge until then,
/// and the slot may go to another edge at once.
/// </remarks>
public sealed class RedialBackoff
{
    private readonly RedialBackoffOptions _options;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private long? _connectedAt;

    /// <summary>Creates the schedule.</summary>
    public RedialBackoff(RedialBackoffOptions options, TimeProvider? timeProvider = null, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _random = random ?? Random.Shared;
    }

    /// <summary>Failures since the last stable connection.</summary>
    public int ConsecutiveFailures { get; private set; }

    /// <summary>Records a failure (a failed dial, or a connection that ended before it was stable) and returns the wait before the next dial.</summary>
    public TimeSpan NextDelay(Exception? failure)
    {
        var attempt = ConsecutiveFailures;
        ConsecutiveFailures = attempt == int.MaxValue ? attempt : attempt + 1;

        TimeSpan delay;
        if (failure is RegistrationRejectedException { Rejection.Retryable: false })
        {
            delay = Uniform(_options.MaxDelay / 2, _options.MaxDelay);
        }
        else if (attempt == 0)
        {
            delay = Uniform(TimeSpan.Zero, _options.BaseDelay / 4);
        }
        else
        {
            delay = Uniform(TimeSpan.Zero, Step(attempt));
        }

        return delay;
    }

    /// <summary>Records that the slot's connection registered.</summary>
    public void OnConnected() => _connectedAt = _time.GetTimestamp();

    /// <summary>
    /// Records that the slot's connection ended. Returns <c>true</c> when it had been stable (the
    /// schedule starts over), <c>false</c> when it counts as a failure.
    /// </summary>
    public bool OnDisconnected()
    {
        var stable = _connectedAt is { } at && _time.GetElapsedTime(at) >= _options.StablePeriod;
        _connectedAt = null;
        if (stable)
        {
            ConsecutiveFailures = 0;
        }

        return stable;
    }

    /// <summary>The upper bound of the wait for a given attempt (1-based growth, capped).</summary>
    internal TimeSpan Step(int attempt)
    {
        var exponent = Math.Min(attempt, 30);
        var ticks = _options.BaseDelay.Ticks * Math.Pow(2, exponent);
        return ticks >= _options.MaxDelay.Ticks ? _options.MaxDelay : TimeSpan.FromTicks((long)ticks);
    }

    private TimeSpan Uniform(TimeSpan min, TimeSpan max) =>
        min + TimeSpan.FromTicks((long)(_random.NextDouble() * (max - min).Ticks));
}
