using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Commands;

/// <summary>The commands about origins' credentials: issue one, list them, revoke one.</summary>
internal static class CredentialCommands
{
    public static Command Issue()
    {
        var dir = Cli.DirectoryOption();
        var domains = new Option<string[]>("--domain") { Description = "A hostname the origin may serve: exact (app.example.com) or wildcard (*.example.com). Repeatable.", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string?>("--out") { Description = "The credential file to write (JSON: certificate, key, edge CA, edges), mode 0600. The plugin loads it." };
        var pemOutput = new Option<string?>("--pem-out") { Description = "Also (or instead) write the certificate and key as PREFIX.pem and PREFIX.key." };
        var edges = new Option<string[]>("--edge") { Description = "Where origins find the edges: host:port, or srv:_tunnel._tcp.example.com. Repeatable; written into the credential.", AllowMultipleArgumentsPerToken = true };
        var edgeServerName = new Option<string?>("--edge-server-name") { Description = "The name in the edges' certificates, when origins dial them by another name or by IP." };
        var days = new Option<int>("--days") { Description = "Validity in days.", DefaultValueFactory = _ => 90 };
        var label = new Option<string>("--label") { Description = "A label for the credential list (the app, the team).", DefaultValueFactory = _ => "" };
        var exclusive = new Option<bool>("--exclusive") { Description = "Claim the credential's exact hostnames exclusively: edges refuse them to every credential that does not claim them too (a wildcard credential covering them, another credential for the same name)." };
        var command = new Command("issue", "Issue an origin's credential for its domains, as one file the plugin loads.") { dir, domains, output, pemOutput, edges, edgeServerName, days, label, exclusive };
        command.SetAction(result =>
        {
            var credentialPath = result.GetValue(output);
            var pemPrefix = result.GetValue(pemOutput);
            if (credentialPath is null && pemPrefix is null)
            {
                Console.Error.WriteLine("Say where to write the credential: --out app.credential.json (and/or --pem-out PREFIX).");
                return 1;
            }

            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Cli.Run(() =>
            {
                var credential = directory.Issue(result.GetValue(domains)!, result.GetValue(edges) ?? [], result.GetValue(edgeServerName), TimeSpan.FromDays(result.GetValue(days)), result.GetValue(label)!, exclusive: result.GetValue(exclusive));
                var written = new List<string>();
                if (credentialPath is not null)
                {
                    EdgeDirectory.WriteCredential(credential, credentialPath);
                    written.Add(credentialPath);
                }

                if (pemPrefix is not null)
                {
                    using var certificate = credential.CreateCertificate();
                    CertificateIssuer.WritePem(certificate, pemPrefix + ".pem", pemPrefix + ".key");
                    written.Add($"{pemPrefix}.pem, {pemPrefix}.key");
                }

                Console.WriteLine($"Issued credential {credential.Id} for {string.Join(", ", credential.Hostnames)}{(result.GetValue(exclusive) ? " (exact names claimed exclusively)" : "")}, valid until {credential.NotAfter:yyyy-MM-dd}: wrote {string.Join(" and ", written)}.");
                WarnOfOverlaps(directory, credential.Id);
            });
        });
        return command;
    }

    /// <summary>Warns, on standard error, of every hostname the new credential shares with another one that may still serve.</summary>
    private static void WarnOfOverlaps(EdgeDirectory directory, string credentialId)
    {
        var revocations = directory.Revocations();
        var now = DateTimeOffset.UtcNow;
        var live = directory.Credentials().Where(c => c.NotAfter > now && revocations.Find(c.Id) is null);
        foreach (var overlap in CredentialOverlaps.Find(live, involving: credentialId))
        {
            Console.Error.WriteLine("warning: " + overlap.Message);
        }
    }

    public static Command Credentials()
    {
        var dir = Cli.DirectoryOption();
        var list = new Command("list", "List the credentials this edge's CA issued, with their expiry and whether they are revoked.") { dir };
        list.SetAction(result =>
        {
            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Cli.Run(() =>
            {
                var revocations = directory.Revocations();
                var credentials = directory.Credentials();
                var now = DateTimeOffset.UtcNow;
                var rows = credentials.Select(c => new[]
                {
                    c.Id,
                    c.Label.Length > 0 ? c.Label : "-",
                    string.Join(",", c.Hostnames) + (c.Exclusive ? " (exclusive)" : ""),
                    c.NotAfter.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + (c.NotAfter < now ? " (expired)" : ""),
                    revocations.Find(c.Id) is { } revoked ? $"revoked {revoked.RevokedAt:yyyy-MM-dd}{(revoked.Reason.Length > 0 ? ": " + revoked.Reason : "")}" : "no",
                });
                Cli.WriteTable(["ID", "LABEL", "HOSTNAMES", "EXPIRES", "REVOKED"], rows);

                // Revoked ids the registry does not know (issued elsewhere, or the registry was lost) still count.
                foreach (var orphan in revocations.Entries.Where(r => credentials.All(c => !string.Equals(c.Id, r.Id, StringComparison.OrdinalIgnoreCase))))
                {
                    Console.WriteLine($"(also revoked: {orphan.Id}, not in the registry)");
                }
            });
        });
        return new Command("credentials", "Inspect issued credentials.") { list };
    }

    public static Command Revoke()
    {
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "The edge directory: revoke by writing its revoked.json (works with the edge stopped; a running edge picks it up within seconds)." };
        var id = new Argument<string>("id") { Description = "The credential id (tunnel-edge credentials list shows it)." };
        var reason = new Option<string>("--reason") { Description = "Why; the origin is told.", DefaultValueFactory = _ => "" };
        var admin = AdminClient.UrlOption();
        var token = AdminClient.TokenFileOption();
        var command = new Command("revoke", "Revoke a credential: its registrations are refused and its live connections closed within seconds.") { id, dir, reason, admin, token };
        command.SetAction(async (result, cancellationToken) =>
        {
            var credentialId = result.GetValue(id)!;
            if (result.GetValue(dir) is { } directoryInfo && result.GetValue(admin) is null)
            {
                var directory = new EdgeDirectory(directoryInfo.FullName);
                return Cli.Run(() =>
                {
                    var known = directory.Credentials().Any(c => string.Equals(c.Id, credentialId, StringComparison.OrdinalIgnoreCase));
                    var entry = directory.Revoke(credentialId, result.GetValue(reason)!).Find(credentialId)!;
                    Console.WriteLine($"Revoked {entry.Id} on {entry.RevokedAt:u}{(known ? "" : " (not in this edge's credential list; revoked anyway)")}.");
                });
            }

            var body = JsonSerializer.Serialize(new Dictionary<string, string> { ["reason"] = result.GetValue(reason)! });
            return await AdminClient.CallAsync(result, admin, token, dir, HttpMethod.Post, $"/api/v1/credentials/{Uri.EscapeDataString(credentialId)}/revoke", body, json =>
            {
                var revoked = json.GetProperty("revoked");
                Console.WriteLine($"Revoked {revoked.GetProperty("id").GetString()}; the edge is closing its {json.GetProperty("liveConnections").GetInt32()} live connection(s).");
            }, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }
}
