using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Tunnel.Transport.Internal;

internal sealed class TunnelHealthCheck(ITunnelStatus status) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var desired = status.DesiredConnections;
        var registered = status.RegisteredConnections;
        var lastError = status.LastError;
        var error = lastError is null ? "" : $" Last error: {lastError.ErrorType} at {lastError.EdgeAddress ?? "(no edge)"}: {lastError.Reason}";
        var data = new Dictionary<string, object>
        {
            ["desired"] = desired,
            ["registered"] = registered,
            ["edges"] = string.Join(", ", status.Slots.Where(s => s.IsRegistered).Select(s => s.EdgeName).Distinct()),
        };
        if (lastError is not null)
        {
            data["lastError"] = $"{lastError.ErrorType}: {lastError.Reason}";
        }

        var description = $"{registered} of {desired} tunnel connections registered.{error}";
        var result = desired > 0 && registered == desired
            ? HealthCheckResult.Healthy(description, data)
            : registered > 0
                ? HealthCheckResult.Degraded(description, data: data)
                : new HealthCheckResult(context.Registration.FailureStatus, desired == 0 ? "The tunnel has not started." : description, data: data);
        return Task.FromResult(result);
    }
}
