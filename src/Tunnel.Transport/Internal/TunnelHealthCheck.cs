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
            ["visitorConnections"] = status.OpenVisitorConnections,
        };
        if (lastError is not null)
        {
            data["lastError"] = $"{lastError.ErrorType}: {lastError.Reason}";
        }

        var credential = status.Credential;
        var credentialProblem = credential?.Problem;
        if (credential is not null)
        {
            data["credential"] = credential.CredentialId;
            data["credentialNotAfter"] = credential.NotAfter.ToString("u", System.Globalization.CultureInfo.InvariantCulture);
            if (credentialProblem is not null)
            {
                data["credentialProblem"] = credentialProblem;
            }
        }

        var description = $"{registered} of {desired} tunnel connections registered.{error}";
        if (credentialProblem is not null)
        {
            description += $" Credential: {credentialProblem}";
        }

        // A credential problem does not stop the open connections, so it degrades rather than fails;
        // it needs a person before the certificate runs out or the next reconnect fails.
        var result = desired > 0 && registered == desired && credentialProblem is null
            ? HealthCheckResult.Healthy(description, data)
            : registered > 0
                ? HealthCheckResult.Degraded(description, data: data)
                : new HealthCheckResult(context.Registration.FailureStatus, desired == 0 ? "The tunnel has not started." : description, data: data);
        return Task.FromResult(result);
    }
}
