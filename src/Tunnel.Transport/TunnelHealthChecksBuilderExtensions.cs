using Microsoft.Extensions.Diagnostics.HealthChecks;
using Tunnel.Transport;
using Tunnel.Transport.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the tunnel's health check.</summary>
public static class TunnelHealthChecksBuilderExtensions
{
    /// <summary>
    /// Reports the tunnel: Healthy with every connection registered, Degraded with some, Unhealthy with
    /// none (or before it started). The description names the counts and the last error, so a refused
    /// registration's reason shows in the health endpoint. A credential problem (a renewed credential
    /// file that could not be loaded, a certificate close to expiry or expired) makes a Healthy tunnel
    /// Degraded and is named in the description. Usable as a Kubernetes readiness probe.
    /// </summary>
    public static IHealthChecksBuilder AddTunnel(this IHealthChecksBuilder builder, string name = "tunnel", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new TunnelHealthCheck(sp.GetRequiredService<ITunnelStatus>()),
            failureStatus: HealthStatus.Unhealthy,
            tags));
    }
}
