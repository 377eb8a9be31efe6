using System.CommandLine;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Commands;

/// <summary>
/// The commands that issue certificates from the edge's CA besides origins' credentials: a visitor-facing
/// site certificate (issue-site) and another edge's certificate (issue-edge).
/// </summary>
internal static class CertificateCommands
{
    public static Command IssueSite()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "The directory holding ca.pem and ca.key (from init).", Required = true };
        var domains = new Option<string[]>("--domain") { Description = "A hostname the certificate serves: exact or wildcard (*.example.com). Repeatable.", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Path prefix of the files to write: PREFIX.pem and PREFIX.key.", Required = true };
        var days = new Option<int>("--days") { Description = "Validity in days.", DefaultValueFactory = _ => 90 };
        var command = new Command("issue-site", "Issue a visitor-facing TLS certificate for the HTTPS port, signed by the edge's CA (tests, development).") { dir, domains, output, days };
        command.SetAction(result =>
        {
            var directory = result.GetValue(dir)!.FullName;
            return Cli.RunIssue(() =>
            {
                using var ca = CertificateIssuer.LoadPem(Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
                using var site = CertificateIssuer.IssueSiteCertificate(ca, result.GetValue(domains)!, TimeSpan.FromDays(result.GetValue(days)));
                var prefix = result.GetValue(output)!;
                CertificateIssuer.WritePem(site, prefix + ".pem", prefix + ".key");
                Console.WriteLine($"Wrote {prefix}.pem and {prefix}.key for {string.Join(", ", result.GetValue(domains)!)}, valid until {site.NotAfter:yyyy-MM-dd}. Visitors must trust {Path.Combine(directory, "ca.pem")}.");
            });
        });
        return command;
    }

    public static Command IssueEdge()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "The directory holding ca.pem and ca.key (from init), shared by the edges of a cluster.", Required = true };
        var dns = new Option<string[]>("--dns") { Description = "DNS names of the edge: its tunnel port and the address its peers dial.", DefaultValueFactory = _ => [], AllowMultipleArgumentsPerToken = true };
        var ips = new Option<string[]>("--ip") { Description = "IP addresses of the edge.", DefaultValueFactory = _ => [], AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Path prefix of the files to write: PREFIX.pem and PREFIX.key.", Required = true };
        var days = new Option<int>("--days") { Description = "Validity in days.", DefaultValueFactory = _ => 365 };
        var command = new Command("issue-edge", "Issue another edge of a cluster its certificate (server and client, for the tunnel port and the inter-edge port), signed by the shared edge CA.") { dir, dns, ips, output, days };
        command.SetAction(result =>
        {
            var directory = result.GetValue(dir)!.FullName;
            if (!Cli.TryParseAddresses(result.GetValue(ips), out var addresses))
            {
                return 1;
            }

            var names = result.GetValue(dns) ?? [];
            if (names.Length == 0 && addresses.Count == 0)
            {
                Console.Error.WriteLine("Name the edge with at least one --dns or --ip: its peers check the address they dial against the certificate.");
                return 1;
            }

            return Cli.RunIssue(() =>
            {
                using var ca = CertificateIssuer.LoadPem(Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
                using var edge = CertificateIssuer.IssueEdgeCertificate(ca, names, addresses, TimeSpan.FromDays(result.GetValue(days)));
                var prefix = result.GetValue(output)!;
                CertificateIssuer.WritePem(edge, prefix + ".pem", prefix + ".key");
                Console.WriteLine($"Wrote {prefix}.pem and {prefix}.key for {string.Join(", ", names.Concat(addresses.Select(a => a.ToString())))}, valid until {edge.NotAfter:yyyy-MM-dd}.");
            });
        });
        return command;
    }
}
