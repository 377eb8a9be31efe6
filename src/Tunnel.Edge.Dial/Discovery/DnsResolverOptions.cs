using System.Net;

namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Where <see cref="DnsSrvResolver"/> sends its queries and how long it waits. A lookup asks the servers
/// in turn, each over UDP first (and over TCP when the UDP answer is truncated), for at most
/// <see cref="Attempts"/> rounds; so one query takes at most
/// <see cref="Attempts"/> × servers × 2 × <see cref="Timeout"/> (the factor 2 when a truncated answer is retried over TCP).
/// </summary>
internal sealed class DnsResolverOptions
{
    /// <summary>The DNS servers to ask, in order. When empty, the <c>nameserver</c> lines of <see cref="ResolvConfPath"/> (port 53), read at each lookup so that a changed file is followed.</summary>
    /// <remarks>Defaults to empty (the system's resolv.conf).</remarks>
    public IList<IPEndPoint> Servers { get; } = [];

    /// <summary>The resolv.conf file read when <see cref="Servers"/> is empty; only its first three <c>nameserver</c> lines count, as for the system resolver.</summary>
    /// <remarks>Defaults to <c>/etc/resolv.conf</c>.</remarks>
    public string ResolvConfPath { get; set; } = "/etc/resolv.conf";

    /// <summary>How long one try may take: one UDP exchange with one server, or the TCP exchange that follows a truncated answer. Between 0 and 30 seconds.</summary>
    /// <remarks>Defaults to 2 seconds: a resolver answers in milliseconds, so waiting longer only delays asking the next one.</remarks>
    public TimeSpan Timeout { get; set; } = DiscoveryLimits.DnsTimeout;

    /// <summary>How many rounds over the server list a query makes before it fails. Between 1 and 5.</summary>
    /// <remarks>Defaults to 2, so that one lost UDP datagram does not fail a lookup.</remarks>
    public int Attempts { get; set; } = DiscoveryLimits.DnsAttempts;

    internal void Validate()
    {
        var problems = new List<string>();
        if (Timeout <= TimeSpan.Zero || Timeout > DiscoveryLimits.MaxDnsTimeout)
        {
            problems.Add($"Timeout must be more than 0 and at most {DiscoveryLimits.MaxDnsTimeout.TotalSeconds:0} seconds (was {Timeout}).");
        }

        if (Attempts is < 1 or > DiscoveryLimits.MaxDnsAttempts)
        {
            problems.Add($"Attempts must be between 1 and {DiscoveryLimits.MaxDnsAttempts} (was {Attempts}).");
        }

        if (Servers.Any(server => server is null))
        {
            problems.Add("Servers contains a null entry.");
        }

        if (Servers.Count == 0 && string.IsNullOrWhiteSpace(ResolvConfPath))
        {
            problems.Add("Servers is empty and ResolvConfPath is not set, so there is no DNS server to ask.");
        }

        if (problems.Count > 0)
        {
            throw new ArgumentException("Invalid DNS resolver options: " + string.Join(" ", problems), "options");
        }
    }
}
