using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Checks the <see cref="TunnelOptions"/> values that need no file: every problem found is listed, so
/// one start names every mistake. The identity's files are <see cref="TunnelIdentityLoader"/>'s to check.
/// </summary>
/// <param name="environmentName">The host's environment: the options that turn off the edge's certificate
/// validation are refused outside <c>Development</c>.</param>
internal sealed class TunnelOptionsValidator(string? environmentName = null) : IValidateOptions<TunnelOptions>
{
    private const int DefaultDnsPort = 53;

    public ValidateOptionsResult Validate(string? name, TunnelOptions options)
    {
        var problems = Problems(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Every problem of <paramref name="options"/>, in the order of the options' documentation.</summary>
    public List<string> Problems(TunnelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        CheckDangerousOptions(options, environmentName ?? Environments.Production, problems);
        if (options.HaConnections is < 1 or > 64)
        {
            problems.Add($"HaConnections must be between 1 and 64 (it is {options.HaConnections}).");
        }

        ParseDnsServers(options, problems);
        if (options.Redial is null || options.Redial.BaseDelay <= TimeSpan.Zero || options.Redial.MaxDelay < options.Redial.BaseDelay)
        {
            problems.Add("Tunnel:Redial needs BaseDelay > 0 and MaxDelay >= BaseDelay.");
        }

        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            problems.Add("Tunnel:ConnectTimeout must be positive.");
        }

        if (options.CredentialCheckInterval <= TimeSpan.Zero)
        {
            problems.Add("Tunnel:CredentialCheckInterval must be positive.");
        }

        if (options.RebalanceInterval < TimeSpan.Zero && options.RebalanceInterval != Timeout.InfiniteTimeSpan)
        {
            problems.Add("Tunnel:RebalanceInterval must not be negative (zero turns the check off).");
        }

        if (options.ReadinessCheckInterval < TimeSpan.Zero && options.ReadinessCheckInterval != Timeout.InfiniteTimeSpan)
        {
            problems.Add("Tunnel:ReadinessCheckInterval must not be negative (zero turns readiness following off).");
        }

        if (options.CertificateExpiryWarning < TimeSpan.Zero)
        {
            problems.Add("Tunnel:CertificateExpiryWarning must not be negative.");
        }

        return problems;
    }

    /// <summary><see cref="TunnelOptions.DnsServers"/> as addresses (port 53 by default); each entry that is not one is a problem.</summary>
    public static List<IPEndPoint> ParseDnsServers(TunnelOptions options, List<string> problems)
    {
        var servers = new List<IPEndPoint>();
        foreach (var text in options.DnsServers.SelectMany(TunnelIdentityLoader.SplitList))
        {
            if (IPEndPoint.TryParse(text, out var server))
            {
                servers.Add(server.Port == 0 ? new IPEndPoint(server.Address, DefaultDnsPort) : server);
            }
            else
            {
                problems.Add($"Tunnel:DnsServers: '{text}' is not an IP address with an optional port.");
            }
        }

        return servers;
    }

    private static void CheckDangerousOptions(TunnelOptions options, string environmentName, List<string> problems)
    {
        if (options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa && !options.DangerousAcceptAnyEdgeCertificate)
        {
            problems.Add("Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa is on without Tunnel:DangerousAcceptAnyEdgeCertificate, which it only widens: remove it.");
        }

        if ((options.DangerousAcceptAnyEdgeCertificate || options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa)
            && !string.Equals(environmentName, Environments.Development, StringComparison.OrdinalIgnoreCase))
        {
            var names = options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa
                ? "Tunnel:DangerousAcceptAnyEdgeCertificate and Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa are"
                : "Tunnel:DangerousAcceptAnyEdgeCertificate is";
            problems.Add($"{names} on in the '{environmentName}' environment: accepting any edge certificate lets anyone on the path impersonate the edge, so it is allowed only in Development. Remove it and pin the edge CA (the credential file's, or Tunnel:EdgeCaPath).");
        }
    }
}
