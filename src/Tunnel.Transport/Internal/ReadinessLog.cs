using Microsoft.Extensions.Logging;

namespace Tunnel.Transport.Internal;

/// <summary>Log events of the app's readiness as the tunnel follows it. Event ids 95-99.</summary>
internal static partial class ReadinessLog
{
    [LoggerMessage(95, LogLevel.Warning, "The app reports not ready ({Checks}): the edges send this replica no new requests until it is ready again; requests in flight finish.", EventName = "NotReady")]
    public static partial void NotReady(ILogger logger, string checks);

    [LoggerMessage(96, LogLevel.Information, "The app reports ready again after {NotReadySeconds:0.0} s: the edges send this replica requests again.", EventName = "ReadyAgain")]
    public static partial void ReadyAgain(ILogger logger, double notReadySeconds);

    [LoggerMessage(97, LogLevel.Information, "The tunnel follows the app's health checks tagged '{Tag}', every {IntervalMilliseconds:0} ms: while one is Unhealthy the edges send this replica no new requests.", EventName = "FollowingReadiness")]
    public static partial void FollowingReadiness(ILogger logger, string tag, double intervalMilliseconds);

    [LoggerMessage(98, LogLevel.Information, "The tunnel does not follow the app's readiness: {Reason}.", EventName = "NotFollowingReadiness")]
    public static partial void NotFollowingReadiness(ILogger logger, string reason);

    [LoggerMessage(99, LogLevel.Error, "Running the app's readiness checks failed unexpectedly; the app is taken as not ready until they run.", EventName = "ReadinessCheckFault")]
    public static partial void ReadinessCheckFault(ILogger logger, Exception exception);
}
