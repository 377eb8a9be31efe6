using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Tunnel.Edge.Access;

/// <summary>Applies <see cref="EdgeLimitsOptions"/> to the visitor listener's Kestrel limits.</summary>
internal static class VisitorLimits
{
    /// <remarks>
    /// The edge's Kestrel serves only visitors (tunnels have their own listener), so these server-wide
    /// limits touch no tunnel. The header limits Kestrel gets are a hard stop at twice the configured
    /// ones: requests between the two reach <see cref="EdgeAccessMiddleware"/>, which answers 431 with
    /// the edge's page and request id; Kestrel answers beyond that itself, with an empty 431, before
    /// spending more memory on the request.
    /// </remarks>
    public static void Apply(KestrelServerLimits kestrel, EdgeLimitsOptions limits)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(limits);
        kestrel.MaxRequestHeadersTotalSize = (int)Math.Min(HostPolicies.MaxHeadersTotalSizeCeiling, 2L * limits.MaxRequestHeadersTotalSize);
        kestrel.MaxRequestHeaderCount = (int)Math.Min(int.MaxValue, 2L * limits.MaxRequestHeaderCount);
        kestrel.RequestHeadersTimeout = limits.RequestHeadersTimeout;
        kestrel.MinRequestBodyDataRate = limits.MinRequestBodyDataRate is { } requestRate ? new MinDataRate(requestRate, limits.MinDataRateGracePeriod) : null;
        kestrel.MinResponseDataRate = limits.MinResponseDataRate is { } responseRate ? new MinDataRate(responseRate, limits.MinDataRateGracePeriod) : null;
    }
}
