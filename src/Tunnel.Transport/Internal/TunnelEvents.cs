using Microsoft.Extensions.Logging;

namespace Tunnel.Transport.Internal;

/// <summary>
/// The one stream of connection events: every event is logged, counted and applied to the status
/// (and so the health check) in the same place, so the three never disagree.
/// </summary>
internal sealed class TunnelEvents(ILoggerFactory loggerFactory, TunnelStatus status, TunnelMetrics metrics)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("Tunnel.Transport");

    public TunnelStatus Status => status;

    public void Publish(TunnelConnectionEvent e)
    {
        status.Apply(e);
        metrics.Record(e);
        Log(e);
    }

    /// <summary>The edge's name, and its region in parentheses when it has one.</summary>
    internal static string DescribeEdge(string? name, string? region) =>
        string.IsNullOrEmpty(region) ? name ?? "" : $"{name} ({region})";

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
