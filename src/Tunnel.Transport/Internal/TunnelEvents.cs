using Microsoft.Extensions.Logging;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Transport.Internal;

/// <summary>
/// The one stream of connection events: every event is logged, counted and applied to the status
/// (and so the health check) in the same place, so the three never disagree.
/// </summary>
internal sealed class TunnelEvents(ILoggerFactory loggerFactory, TunnelStatus status, TunnelMetrics metrics)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("Tunnel.Transport");

    /// <summary>Raised after each event is applied, counted and logged: what unit tests watch.</summary>
    public event Action<TunnelConnectionEvent>? Published;

    public TunnelStatus Status => status;

    public void Publish(TunnelConnectionEvent e)
    {
        status.Apply(e);
        metrics.Record(e);
        Log(e);
        Published?.Invoke(e);
    }

    /// <summary>The edge's name, and its region in parentheses when it has one.</summary>
    internal static string DescribeEdge(string? name, string? region) =>
        string.IsNullOrEmpty(region) ? name ?? "" : $"{name} ({region})";

    /// <summary>The event for a failed dial: its kind, phase and error type from the failure.</summary>
    internal static TunnelConnectionEvent Failure(int index, EdgeAddress? edge, Exception failure, TimeSpan delay, DateTimeOffset at)
    {
        var e = new TunnelConnectionEvent(TunnelConnectionEventKind.DialFailed, index, at)
        {
            EdgeAddress = edge?.ToString(),
            RetryDelay = delay,
            Reason = failure.Message,
        };
        return failure switch
        {
            RegistrationRejectedException rejected => e with
            {
                Kind = TunnelConnectionEventKind.Rejected,
                Phase = nameof(DialPhase.Registration),
                ErrorType = rejected.Rejection.Code,
                Reason = rejected.Rejection.Message,
                Retryable = rejected.Rejection.Retryable,
            },
            EdgeDiscoveryException => e with { Phase = nameof(DialPhase.Discovery), ErrorType = "discovery_failed" },
            EdgeDialException dial => e with { Phase = dial.Phase.ToString(), ErrorType = dial.ErrorType },
            _ => e with { Phase = "Unknown", ErrorType = failure.GetType().Name },
        };
    }

    private void Log(TunnelConnectionEvent e)
    {
        var edge = e.EdgeAddress ?? "(no edge)";
        var delay = e.RetryDelay?.TotalMilliseconds ?? 0;
        switch (e.Kind)
        {
            case TunnelConnectionEventKind.Registered:
                TunnelLog.Registered(_logger, e.ConnectionIndex, DescribeEdge(e.EdgeName, e.EdgeRegion), edge, e.TunnelConnectionId ?? "", e.Timings?.Total.TotalMilliseconds ?? 0);
                break;
            case TunnelConnectionEventKind.Rejected:
                TunnelLog.RegistrationRejected(_logger, e.ConnectionIndex, edge, e.ErrorType ?? "", e.Retryable ?? false, e.Reason ?? "", delay);
                break;
            case TunnelConnectionEventKind.DialFailed:
                TunnelLog.DialFailed(_logger, e.ConnectionIndex, edge, e.Phase ?? "Unknown", e.ErrorType ?? "", e.Reason ?? "", delay);
                break;
            case TunnelConnectionEventKind.Disconnected:
                TunnelLog.Disconnected(_logger, e.ConnectionIndex, e.EdgeName ?? "", e.TunnelConnectionId ?? "", e.Uptime?.TotalSeconds ?? 0);
                break;
            case TunnelConnectionEventKind.Moving:
                TunnelLog.MoveRequested(_logger, e.ConnectionIndex, e.EdgeName ?? "", e.TunnelConnectionId ?? "");
                break;
            case TunnelConnectionEventKind.Renewing:
                TunnelLog.Renewing(_logger, e.ConnectionIndex, e.TunnelConnectionId ?? "");
                break;
            case TunnelConnectionEventKind.Dropped:
                TunnelLog.TunnelSilent(_logger, e.ConnectionIndex, e.TunnelConnectionId ?? "", e.Reason ?? "");
                break;
            case TunnelConnectionEventKind.Rebalancing:
                TunnelLog.Rebalancing(_logger, e.ConnectionIndex, e.TunnelConnectionId ?? "", e.EdgeName ?? "", e.Reason ?? "");
                break;
            case TunnelConnectionEventKind.RebalanceFailed:
                TunnelLog.RebalanceFailed(_logger, e.ConnectionIndex, edge, e.Phase ?? "Unknown", e.ErrorType ?? "", e.Reason ?? "");
                break;
        }
    }
}
