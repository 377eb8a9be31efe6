using System.CommandLine;
using System.Net;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Commands;

/// <summary>
/// The commands that create and keep an edge directory: its CA (init, rotate-ca, retire-ca) and the tunnel
/// port's server certificate (renew-server).
/// </summary>
internal static class DirectoryCommands
{
    public static Command Init()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "The edge directory to create: CA, server certificate, trusted CAs, admin token.", Required = true };
        var name = new Option<string>("--name") { Description = "The CA's name.", DefaultValueFactory = _ => "Tunnel Edge CA" };
        var dns = new Option<string[]>("--dns") { Description = "DNS names of the edge (its tunnel port's TLS certificate).", DefaultValueFactory = _ => ["localhost"], AllowMultipleArgumentsPerToken = true };
        var ips = new Option<string[]>("--ip") { Description = "IP addresses of the edge.", DefaultValueFactory = _ => ["127.0.0.1", "::1"], AllowMultipleArgumentsPerToken = true };
        var days = new Option<int>("--days") { Description = "Validity of the CA in days (the edge certificate: a year at most).", DefaultValueFactory = _ => 3650 };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing CA." };
        var command = new Command("init", "Create the edge's CA, its TLS server certificate, the trusted CA bundle and the admin API token.") { dir, name, dns, ips, days, force };
        command.SetAction(result =>
        {
            if (!Cli.TryParseAddresses(result.GetValue(ips), out var addresses))
            {
                return 1;
            }

            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Cli.Run(() =>
            {
                directory.Initialize(result.GetValue(name)!, result.GetValue(dns) ?? [], addresses, TimeSpan.FromDays(result.GetValue(days)), result.GetValue(force));
                Console.WriteLine($"Wrote {EdgeDirectory.CaCertificateFile}, {EdgeDirectory.CaKeyFile}, {EdgeDirectory.ServerCertificateFile}, {EdgeDirectory.ServerKeyFile}, {EdgeDirectory.TrustedCasFile} and {EdgeDirectory.AdminTokenFile} in {directory.Path}.");
            });
        });
        return command;
    }

    public static Command RotateCa()
    {
        var dir = Cli.DirectoryOption();
        var name = new Option<string>("--name") { Description = "The new CA's name.", DefaultValueFactory = _ => $"Tunnel Edge CA {DateTime.UtcNow:yyyy-MM-dd}" };
        var days = new Option<int>("--days") { Description = "Validity of the new CA in days.", DefaultValueFactory = _ => 3650 };
        var command = new Command("rotate-ca", "Start a CA rotation: create the next CA, issue from it from now on, and trust both until retire-ca.") { dir, name, days };
        command.SetAction(result =>
        {
            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Cli.Run(() =>
            {
                using var next = directory.RotateCa(result.GetValue(name)!, TimeSpan.FromDays(result.GetValue(days)));
                Console.WriteLine($"New issuing CA {next.Subject} (serial {next.SerialNumber}); {EdgeDirectory.TrustedCasFile} now trusts the old and the new CA.");
                Console.WriteLine("Next: re-issue every origin's credential (tunnel-edge issue), then tunnel-edge renew-server, then tunnel-edge retire-ca.");
            });
        });
        return command;
    }

    public static Command RetireCa()
    {
        var dir = Cli.DirectoryOption();
        var command = new Command("retire-ca", "End a CA rotation: stop trusting every CA but the issuing one; credentials from the old CA are refused and their connections closed.") { dir };
        command.SetAction(result =>
        {
            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Cli.Run(() =>
            {
                var retired = directory.RetireOldCas();
                Console.WriteLine(retired.Count == 0 ? "Nothing to retire: only the issuing CA is trusted." : $"No longer trusted: {string.Join("; ", retired)}.");
            });
        });
        return command;
    }

    public static Command RenewServer()
    {
        var dir = Cli.DirectoryOption();
        var dns = new Option<string[]>("--dns") { Description = "DNS names of the edge (default: those of the current certificate).", AllowMultipleArgumentsPerToken = true };
        var ips = new Option<string[]>("--ip") { Description = "IP addresses of the edge (default: those of the current certificate).", AllowMultipleArgumentsPerToken = true };
        var days = new Option<int>("--days") { Description = "Validity in days.", DefaultValueFactory = _ => 365 };
        var command = new Command("renew-server", "Issue a new TLS server certificate for the tunnel port from the issuing CA; a running edge uses it for new handshakes within seconds.") { dir, dns, ips, days };
        command.SetAction(result =>
        {
            IReadOnlyList<IPAddress>? addresses = null;
            if (result.GetValue(ips) is { Length: > 0 } texts)
            {
                if (!Cli.TryParseAddresses(texts, out var parsed))
                {
                    return 1;
                }

                addresses = parsed;
            }

            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Cli.Run(() =>
            {
                using var renewed = directory.RenewServerCertificate(result.GetValue(dns), addresses, TimeSpan.FromDays(result.GetValue(days)));
                Console.WriteLine($"Wrote {directory.File(EdgeDirectory.ServerCertificateFile)}: {renewed.Subject}, serial {renewed.SerialNumber}, issued by {renewed.Issuer}, valid until {renewed.NotAfter:yyyy-MM-dd}.");
            });
        });
        return command;
    }
}
