using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Tunnel.Edge.Access;

/// <summary>Applies <see cref="EdgeLimitsOptions"/> to the visitor listener's Kestrel limits.</summary>
internal static class VisitorLimits
{
    /// <remarks>
    /// The edge's Kestrel serves only visitors (tunnels have their own listener), so these server-wide
    /// limits touch no tunnel. Kestrel answers oversized headers with 431 itself, before any middleware.
    /// </remarks>
    public static void Apply(KestrelServerLimits kestrel, EdgeLimitsOptions limits)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(limits);
        kestrel.MaxRequestHeadersTotalSize = limits.MaxRequestHeadersTotalSize;
        kestrel.MaxRequestHeaderCount = limits.MaxRequestHeaderCount;
        kestrel.MinRequestBodyDataRate = limits.MinRequestBodyDataRate is { } requestRate ? new MinDataRate(requestRate, limits.MinDataRateGracePeriod) : null;
        kestrel.MinResponseDataRate = limits.MinResponseDataRate is { } responseRate ? new MinDataRate(responseRate, limits.MinDataRateGracePeriod) : null;
    }
}
