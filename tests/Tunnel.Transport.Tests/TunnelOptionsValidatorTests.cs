using Microsoft.Extensions.Hosting;
using Tunnel.Transport.Internal;

namespace Tunnel.Transport.Tests;

/// <summary>The checks of the options that need no file, each problem named, all at once.</summary>
public sealed class TunnelOptionsValidatorTests
{
    [Fact]
    public void Accepts_the_defaults()
    {
        var result = new TunnelOptionsValidator().Validate(null, new TunnelOptions());

        Assert.True(result.Succeeded);
    }

    [Fact]
    public void Lists_every_problem_at_once()
    {
        var options = new TunnelOptions
        {
            HaConnections = 0,
            DnsServers = ["10.0.0.1:5353", "not-an-address"],
            ConnectTimeout = TimeSpan.Zero,
            CredentialCheckInterval = TimeSpan.Zero,
            RebalanceInterval = TimeSpan.FromSeconds(-1),
            CertificateExpiryWarning = TimeSpan.FromSeconds(-1),
        };
        options.Redial.BaseDelay = TimeSpan.Zero;

        var result = new TunnelOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Equal(
            [
                "HaConnections must be between 1 and 64 (it is 0).",
                "Tunnel:DnsServers: 'not-an-address' is not an IP address with an optional port.",
                "Tunnel:Redial needs BaseDelay > 0 and MaxDelay >= BaseDelay.",
                "Tunnel:ConnectTimeout must be positive.",
                "Tunnel:CredentialCheckInterval must be positive.",
                "Tunnel:RebalanceInterval must not be negative (zero turns the check off).",
                "Tunnel:CertificateExpiryWarning must not be negative.",
            ],
            result.Failures);
    }

    [Fact]
    public void An_infinite_rebalance_interval_is_allowed()
    {
        var result = new TunnelOptionsValidator().Validate(null, new TunnelOptions { RebalanceInterval = Timeout.InfiniteTimeSpan });

        Assert.True(result.Succeeded);
    }

    [Fact]
    public void Refuses_accepting_any_edge_certificate_outside_Development()
    {
        var options = new TunnelOptions { DangerousAcceptAnyEdgeCertificate = true };

        Assert.True(new TunnelOptionsValidator(Environments.Development).Validate(null, options).Succeeded);
        var failure = Assert.Single(new TunnelOptionsValidator(Environments.Staging).Validate(null, options).Failures!);
        Assert.StartsWith("Tunnel:DangerousAcceptAnyEdgeCertificate is on in the 'Staging' environment", failure);
        Assert.Single(new TunnelOptionsValidator().Validate(null, options).Failures!, f => f.Contains("'Production'", StringComparison.Ordinal));
    }

    [Fact]
    public void Reads_DNS_servers_with_port_53_by_default()
    {
        var problems = new List<string>();

        var servers = TunnelOptionsValidator.ParseDnsServers(new TunnelOptions { DnsServers = ["10.0.0.1, 10.0.0.2:5353"] }, problems);

        Assert.Empty(problems);
        Assert.Equal(["10.0.0.1:53", "10.0.0.2:5353"], servers.Select(s => s.ToString()));
    }
}
