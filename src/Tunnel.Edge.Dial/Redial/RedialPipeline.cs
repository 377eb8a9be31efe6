using Polly;
using Polly.Retry;

namespace Tunnel.Edge.Dial.Redial;

/// <summary>
/// Builds the Polly pipeline that retries a slot's dial forever, waiting what
/// <see cref="RedialBackoff"/> says between attempts, until the slot is stopped.
/// </summary>
public static class RedialPipeline
{
    /// <summary>
    /// Creates the pipeline. <paramref name="onRetry"/> is called after each failed attempt with the
    /// failure and the wait chosen; use it for logs and metrics.
    /// </summary>
    public static ResiliencePipeline Create(RedialBackoff backoff, Action<Exception, TimeSpan> onRetry, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(backoff);
        ArgumentNullException.ThrowIfNull(onRetry);
        var builder = new ResiliencePipelineBuilder();
        if (timeProvider is not null)
        {
            builder.TimeProvider = timeProvider;
        }

        return builder.AddRetry(new RetryStrategyOptions
        {
            // Forever: a tunnel that gives up leaves the app unreachable until someone restarts it.
            MaxRetryAttempts = int.MaxValue,
            ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException),
            DelayGenerator = args => new ValueTask<TimeSpan?>(backoff.NextDelay(args.Outcome.Exception)),
            OnRetry = args =>
            {
                onRetry(args.Outcome.Exception!, args.RetryDelay);
                return default;
            },
        }).Build();
    }
}
