using Microsoft.Extensions.Options;
using Tunnel.Edge.Access;
using Tunnel.Edge.Admin;
using Tunnel.Edge.Cluster;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;

namespace Tunnel.Edge;

/// <summary>
/// Checks an edge's options in one place, before anything is built: the credential paths, the limits and
/// host rules, the HTTPS redirect hosts, the admin networks and the cluster. Every problem is listed, not
/// only the first, so one start tells the operator all there is to fix. Files are read later, by what uses them.
/// </summary>
internal sealed class EdgeOptionsValidator : IValidateOptions<EdgeOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, EdgeOptions options)
    {
        var problems = Problems(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Throws one <see cref="InvalidOperationException"/> that lists every problem of the options.</summary>
    public static void ThrowIfInvalid(EdgeOptions options)
    {
        var problems = Problems(options);
        if (problems.Count > 0)
        {
            throw new InvalidOperationException("The edge's options are misconfigured:" + Environment.NewLine + " - " + string.Join(Environment.NewLine + " - ", problems));
        }
    }

    /// <summary>Every problem of the options, in the order of the sections they name; empty when they are valid.</summary>
    public static List<string> Problems(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (EdgeCredentials.MissingPathsProblem(options) is { } missing)
        {
            problems.Add(missing);
        }

        HostPolicies.Validate(options, problems);
        Access.SignIn.SignInValidation.Validate(options, problems);
        HttpsRedirect.Validate(options, problems);
        Visitors.Passthrough.PassthroughServices.Validate(options, problems);
        Certificates.Acme.AcmeServices.Validate(options, problems);
        if (options.AdminPort >= 0)
        {
            AdminApi.ValidateNetworks(options, problems);
        }

        if (options.Cluster.IsEnabled)
        {
            ClusterServices.Validate(options, problems);
        }

        Dns.DnsServices.Validate(options, problems);

        return problems;
    }
}
