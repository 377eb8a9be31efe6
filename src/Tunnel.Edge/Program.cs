using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge;
using Tunnel.Edge.Hosting;
using Tunnel.Edge.Identity;

var root = new RootCommand("tunnel-edge: the edge server of a self-hosted tunnel for ASP.NET Core apps.");
root.Subcommands.Add(EdgeCommands.Init());
root.Subcommands.Add(EdgeCommands.Issue());
root.Subcommands.Add(EdgeCommands.IssueSite());
root.Subcommands.Add(EdgeCommands.Credentials());
root.Subcommands.Add(EdgeCommands.Revoke());
root.Subcommands.Add(EdgeCommands.Routes());
root.Subcommands.Add(EdgeCommands.Drain());
root.Subcommands.Add(EdgeCommands.RotateCa());
root.Subcommands.Add(EdgeCommands.RenewServer());
root.Subcommands.Add(EdgeCommands.RetireCa());
root.Subcommands.Add(EdgeCommands.IssueEdge());
root.Subcommands.Add(EdgeCommands.Serve());
// The host handles SIGTERM itself (drain, then exit 0); System.CommandLine's own handler would kill
// the process two seconds into the drain.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);

internal static class EdgeCommands
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
            if (!TryParseAddresses(result.GetValue(ips), out var addresses))
            {
                return 1;
            }

            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Run(() =>
            {
                directory.Initialize(result.GetValue(name)!, result.GetValue(dns) ?? [], addresses, TimeSpan.FromDays(result.GetValue(days)), result.GetValue(force));
                Console.WriteLine($"Wrote {EdgeDirectory.CaCertificateFile}, {EdgeDirectory.CaKeyFile}, {EdgeDirectory.ServerCertificateFile}, {EdgeDirectory.ServerKeyFile}, {EdgeDirectory.TrustedCasFile} and {EdgeDirectory.AdminTokenFile} in {directory.Path}.");
            });
        });
        return command;
    }

    public static Command Issue()
    {
        var dir = DirectoryOption();
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
            return Run(() =>
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
        var dir = DirectoryOption();
        var list = new Command("list", "List the credentials this edge's CA issued, with their expiry and whether they are revoked.") { dir };
        list.SetAction(result =>
        {
            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Run(() =>
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
                WriteTable(["ID", "LABEL", "HOSTNAMES", "EXPIRES", "REVOKED"], rows);

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
        var admin = AdminUrlOption();
        var token = TokenFileOption();
        var command = new Command("revoke", "Revoke a credential: its registrations are refused and its live connections closed within seconds.") { id, dir, reason, admin, token };
        command.SetAction(async (result, cancellationToken) =>
        {
            var credentialId = result.GetValue(id)!;
            if (result.GetValue(dir) is { } directoryInfo && result.GetValue(admin) is null)
            {
                var directory = new EdgeDirectory(directoryInfo.FullName);
                return Run(() =>
                {
                    var known = directory.Credentials().Any(c => string.Equals(c.Id, credentialId, StringComparison.OrdinalIgnoreCase));
                    var entry = directory.Revoke(credentialId, result.GetValue(reason)!).Find(credentialId)!;
                    Console.WriteLine($"Revoked {entry.Id} on {entry.RevokedAt:u}{(known ? "" : " (not in this edge's credential list; revoked anyway)")}.");
                });
            }

            var body = JsonSerializer.Serialize(new Dictionary<string, string> { ["reason"] = result.GetValue(reason)! });
            return await CallAdminAsync(result, admin, token, dir, HttpMethod.Post, $"/api/v1/credentials/{Uri.EscapeDataString(credentialId)}/revoke", body, json =>
            {
                var revoked = json.GetProperty("revoked");
                Console.WriteLine($"Revoked {revoked.GetProperty("id").GetString()}; the edge is closing its {json.GetProperty("liveConnections").GetInt32()} live connection(s).");
            }, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    public static Command Routes()
    {
        var admin = AdminUrlOption();
        var token = TokenFileOption();
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "Read the admin token from this edge directory's admin.token." };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON as it is." };
        var command = new Command("routes", "List a running edge's routes: hostname, connectors, connections with edge and uptime.") { admin, token, dir, json };
        command.SetAction(async (result, cancellationToken) =>
            await CallAdminAsync(result, admin, token, dir, HttpMethod.Get, "/api/v1/routes", null, document =>
            {
                if (result.GetValue(json))
                {
                    Console.WriteLine(document.GetRawText());
                    return;
                }

                var routes = document.GetProperty("routes");
                if (routes.GetArrayLength() == 0)
                {
                    Console.WriteLine("No routes: no origin is connected.");
                }

                foreach (var route in routes.EnumerateArray())
                {
                    Console.WriteLine(route.GetProperty("hostname").GetString());
                    foreach (var connector in route.GetProperty("connectors").EnumerateArray())
                    {
                        Console.WriteLine($"  connector {connector.GetProperty("connectorId").GetString()} (credential {connector.GetProperty("credentialId").GetString()})");
                        foreach (var connection in connector.GetProperty("connections").EnumerateArray())
                        {
                            var uptime = TimeSpan.FromSeconds(connection.GetProperty("uptimeSeconds").GetDouble());
                            var draining = connection.GetProperty("draining").GetBoolean() ? ", draining" : "";
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"    {connection.GetProperty("id").GetString()}  edge {connection.GetProperty("edge").GetString()}  from {connection.GetProperty("remote").GetString()}  up {(int)uptime.TotalHours}:{uptime.Minutes:00}:{uptime.Seconds:00}  {connection.GetProperty("requests").GetInt64()} requests{draining}"));
                        }
                    }
                }
            }, cancellationToken).ConfigureAwait(false));
        return command;
    }

    public static Command Drain()
    {
        var admin = AdminUrlOption();
        var token = TokenFileOption();
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "Read the admin token from this edge directory's admin.token." };
        var connector = new Argument<string>("connector") { Description = "The connector id (tunnel-edge routes shows it)." };
        var command = new Command("drain", "Ask a connector to move its tunnels off this edge (it dials replacements first; no request is lost).") { connector, admin, token, dir };
        command.SetAction(async (result, cancellationToken) =>
            await CallAdminAsync(result, admin, token, dir, HttpMethod.Post, $"/api/v1/connectors/{Uri.EscapeDataString(result.GetValue(connector)!)}/drain", "", document =>
                Console.WriteLine($"Asked connector {document.GetProperty("connectorId").GetString()} to move {document.GetProperty("connections").GetInt32()} connection(s)."),
                cancellationToken).ConfigureAwait(false));
        return command;
    }

    public static Command RotateCa()
    {
        var dir = DirectoryOption();
        var name = new Option<string>("--name") { Description = "The new CA's name.", DefaultValueFactory = _ => $"Tunnel Edge CA {DateTime.UtcNow:yyyy-MM-dd}" };
        var days = new Option<int>("--days") { Description = "Validity of the new CA in days.", DefaultValueFactory = _ => 3650 };
        var command = new Command("rotate-ca", "Start a CA rotation: create the next CA, issue from it from now on, and trust both until retire-ca.") { dir, name, days };
        command.SetAction(result =>
        {
            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Run(() =>
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
        var dir = DirectoryOption();
        var command = new Command("retire-ca", "End a CA rotation: stop trusting every CA but the issuing one; credentials from the old CA are refused and their connections closed.") { dir };
        command.SetAction(result =>
        {
            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Run(() =>
            {
                var retired = directory.RetireOldCas();
                Console.WriteLine(retired.Count == 0 ? "Nothing to retire: only the issuing CA is trusted." : $"No longer trusted: {string.Join("; ", retired)}.");
            });
        });
        return command;
    }

    public static Command RenewServer()
    {
        var dir = DirectoryOption();
        var dns = new Option<string[]>("--dns") { Description = "DNS names of the edge (default: those of the current certificate).", AllowMultipleArgumentsPerToken = true };
        var ips = new Option<string[]>("--ip") { Description = "IP addresses of the edge (default: those of the current certificate).", AllowMultipleArgumentsPerToken = true };
        var days = new Option<int>("--days") { Description = "Validity in days.", DefaultValueFactory = _ => 365 };
        var command = new Command("renew-server", "Issue a new TLS server certificate for the tunnel port from the issuing CA; a running edge uses it for new handshakes within seconds.") { dir, dns, ips, days };
        command.SetAction(result =>
        {
            IReadOnlyList<IPAddress>? addresses = null;
            if (result.GetValue(ips) is { Length: > 0 } texts)
            {
                if (!TryParseAddresses(texts, out var parsed))
                {
                    return 1;
                }

                addresses = parsed;
            }

            var directory = new EdgeDirectory(result.GetValue(dir)!.FullName);
            return Run(() =>
            {
                using var renewed = directory.RenewServerCertificate(result.GetValue(dns), addresses, TimeSpan.FromDays(result.GetValue(days)));
                Console.WriteLine($"Wrote {directory.File(EdgeDirectory.ServerCertificateFile)}: {renewed.Subject}, serial {renewed.SerialNumber}, issued by {renewed.Issuer}, valid until {renewed.NotAfter:yyyy-MM-dd}.");
            });
        });
        return command;
    }

    /// <summary>
    /// Splits <c>CERT.pem:KEY.pem</c> at the last ':' (so a Windows drive letter stays with its path);
    /// the key is <c>null</c> for one PEM holding both.
    /// </summary>
    private static (string CertificatePath, string? KeyPath) SplitPemPair(string pair)
    {
        var colon = pair.LastIndexOf(':');
        return colon > 1 ? (pair[..colon], pair[(colon + 1)..]) : (pair, null);
    }

    private static Option<DirectoryInfo> DirectoryOption() => new("--dir") { Description = "The edge directory (from init).", Required = true };

    private static Option<string?> AdminUrlOption() => new("--admin") { Description = "The running edge's admin URL (default http://127.0.0.1:9844)." };

    private static Option<FileInfo?> TokenFileOption() => new("--token-file") { Description = "The admin token file (default: admin.token in --dir)." };

    private static int Run(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
    }

    private static bool TryParseAddresses(string[]? texts, out List<IPAddress> addresses)
    {
        addresses = [];
        foreach (var text in texts ?? [])
        {
            if (!IPAddress.TryParse(text, out var ip))
            {
                Console.Error.WriteLine($"'{text}' is not an IP address.");
                return false;
            }

            addresses.Add(ip);
        }

        return true;
    }

    private static void WriteTable(string[] headers, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(headers).ToList();
        var widths = headers.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))));
        }
    }

    private static async Task<int> CallAdminAsync(ParseResult result, Option<string?> adminOption, Option<FileInfo?> tokenOption, Option<DirectoryInfo?> dirOption, HttpMethod method, string path, string? body, Action<JsonElement> print, CancellationToken cancellationToken)
    {
        var tokenPath = result.GetValue(tokenOption)?.FullName
            ?? (result.GetValue(dirOption) is { } directory ? new EdgeDirectory(directory.FullName).File(EdgeDirectory.AdminTokenFile) : null);
        if (tokenPath is null)
        {
            Console.Error.WriteLine("The admin API needs its token: --token-file FILE or --dir EDGE_DIR (its admin.token).");
            return 1;
        }

        string token;
        try
        {
            token = AdminToken.Load(tokenPath);
        }
        catch (InvalidOperationException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }

        var baseUrl = (result.GetValue(adminOption) ?? "http://127.0.0.1:9844").TrimEnd('/');
        using var client = new HttpClient { Timeout = AdminCallTimeout };
        using var request = new HttpRequestMessage(method, baseUrl + path);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        if (body is not null)
        {
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        }

        try
        {
            using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            using var document = JsonDocument.Parse(text.Length > 0 ? text : "{}");
            if (!response.IsSuccessStatusCode)
            {
                var error = document.RootElement.TryGetProperty("error", out var message) ? message.GetString() : text;
                Console.Error.WriteLine($"The edge at {baseUrl} answered {(int)response.StatusCode}: {error}");
                return 1;
            }

            print(document.RootElement);
            return 0;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            Console.Error.WriteLine($"Cannot reach the edge's admin API at {baseUrl}: {ex.Message}");
            return 1;
        }
    }

    // An admin call is one small request to a local port; a stuck edge should not hang the shell.
    private static readonly TimeSpan AdminCallTimeout = TimeSpan.FromSeconds(15);

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
            try
            {
                using var ca = CertificateIssuer.LoadPem(Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
                using var site = CertificateIssuer.IssueSiteCertificate(ca, result.GetValue(domains)!, TimeSpan.FromDays(result.GetValue(days)));
                var prefix = result.GetValue(output)!;
                CertificateIssuer.WritePem(site, prefix + ".pem", prefix + ".key");
                Console.WriteLine($"Wrote {prefix}.pem and {prefix}.key for {string.Join(", ", result.GetValue(domains)!)}, valid until {site.NotAfter:yyyy-MM-dd}. Visitors must trust {Path.Combine(directory, "ca.pem")}.");
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
            {
                Console.Error.WriteLine(ex.Message);
                return 1;
            }

            return 0;
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
            var addresses = new List<IPAddress>();
            foreach (var text in result.GetValue(ips) ?? [])
            {
                if (!IPAddress.TryParse(text, out var ip))
                {
                    Console.Error.WriteLine($"'{text}' is not an IP address.");
                    return 1;
                }

                addresses.Add(ip);
            }

            var names = result.GetValue(dns) ?? [];
            if (names.Length == 0 && addresses.Count == 0)
            {
                Console.Error.WriteLine("Name the edge with at least one --dns or --ip: its peers check the address they dial against the certificate.");
                return 1;
            }

            try
            {
                using var ca = CertificateIssuer.LoadPem(Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
                using var edge = CertificateIssuer.IssueEdgeCertificate(ca, names, addresses, TimeSpan.FromDays(result.GetValue(days)));
                var prefix = result.GetValue(output)!;
                CertificateIssuer.WritePem(edge, prefix + ".pem", prefix + ".key");
                Console.WriteLine($"Wrote {prefix}.pem and {prefix}.key for {string.Join(", ", names.Concat(addresses.Select(a => a.ToString())))}, valid until {edge.NotAfter:yyyy-MM-dd}.");
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
            {
                Console.Error.WriteLine(ex.Message);
                return 1;
            }

            return 0;
        });
        return command;
    }

    public static Command Serve()
    {
        var config = new Option<FileInfo?>("--config") { Description = "A JSON file with an \"Edge\" section (see the README for every key)." };
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "Take ca.pem, edge.pem and edge.key from this directory (from init)." };
        var name = new Option<string?>("--name") { Description = "The edge's name." };
        var region = new Option<string?>("--region") { Description = "The edge's region." };
        var tunnelPort = new Option<int?>("--tunnel-port") { Description = "The tunnel port (default 7844)." };
        var httpPort = new Option<int?>("--http-port") { Description = "The visitor HTTP port (default 8080)." };
        var listen = new Option<string?>("--listen") { Description = "The IP address every port listens on (default 0.0.0.0)." };
        var httpsPort = new Option<int?>("--https-port") { Description = "The visitor HTTPS port (default 8443; -1 disables it). Opens when a certificate is given." };
        var certificates = new Option<string[]>("--cert") { Description = "A visitor certificate for the HTTPS port: CERT.pem:KEY.pem, or one PEM holding both. Repeatable; the first is the default for unknown names.", AllowMultipleArgumentsPerToken = true };
        var certificateDirectory = new Option<DirectoryInfo?>("--cert-dir") { Description = "A directory of visitor certificates: every NAME.pem with NAME.key beside it." };
        var redirectHosts = new Option<string[]>("--redirect-https") { Description = "Redirect plain HTTP for this hostname to HTTPS (308); '*' for every host. Repeatable.", AllowMultipleArgumentsPerToken = true };
        var adminPort = new Option<int?>("--admin-port") { Description = "The admin port: status page at /, Prometheus metrics at /metrics (default 9844; -1 disables it)." };
        var adminAddress = new Option<string?>("--admin-listen") { Description = "The IP address the admin port listens on (default 127.0.0.1; --listen does not change it)." };
        var adminAllow = new Option<string[]>("--admin-allow") { Description = "A network (CIDR) the admin API accepts requests from; repeatable, replaces the default (127.0.0.0/8 and ::1).", AllowMultipleArgumentsPerToken = true };
        var etcd = new Option<string[]>("--etcd") { Description = "An etcd client URL (http://host:2379) of the cluster's route store; repeatable. Without it the edge runs alone.", AllowMultipleArgumentsPerToken = true };
        var peerPort = new Option<int?>("--peer-port") { Description = "The inter-edge port, mutual TLS (default 7845)." };
        var peerListen = new Option<string?>("--peer-listen") { Description = "The IP address the inter-edge port listens on (default --listen, else 0.0.0.0)." };
        var peerAdvertise = new Option<string?>("--peer-advertise") { Description = "host:port the other edges dial to reach this one (default the inter-edge address and port)." };
        var peerCertificate = new Option<string?>("--peer-cert") { Description = "The edge's certificate for the inter-edge port, CERT.pem:KEY.pem (default edge.pem; from issue-edge)." };
        var etcdCa = new Option<string?>("--etcd-ca") { Description = "PEM file of the CA an https etcd endpoint's certificate must chain to (default the system roots)." };
        var etcdCertificate = new Option<string?>("--etcd-cert") { Description = "The client certificate for an etcd with --client-cert-auth: CERT.pem:KEY.pem, or one PEM holding both." };
        var etcdUser = new Option<string?>("--etcd-user") { Description = "The etcd user to log in as, for an etcd with authentication enabled." };
        var etcdPasswordFile = new Option<FileInfo?>("--etcd-password-file") { Description = "A file holding the password of --etcd-user (or set TUNNEL_EDGE_Edge__Cluster__StorePassword)." };
        var leaseTtl = new Option<double?>("--lease-ttl") { Description = "Seconds the edge's routes outlive it in the cluster (default 5)." };
        var command = new Command("serve", "Run the edge.") { config, dir, name, region, tunnelPort, httpPort, listen, httpsPort, certificates, certificateDirectory, redirectHosts, adminPort, adminAddress, adminAllow, etcd, etcdCa, etcdCertificate, etcdUser, etcdPasswordFile, peerPort, peerListen, peerAdvertise, peerCertificate, leaseTtl };
        command.SetAction(async (result, cancellationToken) =>
        {
            var configuration = new ConfigurationBuilder();
            if (result.GetValue(config) is { } file)
            {
                configuration.AddJsonFile(file.FullName, optional: false);
            }

            configuration.AddEnvironmentVariables("TUNNEL_EDGE_");
            var options = new EdgeOptions();
            configuration.Build().GetSection(EdgeOptions.SectionName).Bind(options);
            if (result.GetValue(dir) is { } directoryInfo)
            {
                var directory = new EdgeDirectory(directoryInfo.FullName);
                options.CaCertificatePath ??= directory.TrustedCasPath;
                options.ServerCertificatePath ??= directory.File(EdgeDirectory.ServerCertificateFile);
                options.ServerKeyPath ??= directory.File(EdgeDirectory.ServerKeyFile);
                options.RevocationListPath ??= directory.File(EdgeDirectory.RevocationsFile);
                options.CredentialRegistryPath ??= directory.File(EdgeDirectory.RegistryFile);
                if (File.Exists(directory.File(EdgeDirectory.AdminTokenFile)))
                {
                    options.AdminTokenPath ??= directory.File(EdgeDirectory.AdminTokenFile);
                }
            }

            options.Name = result.GetValue(name) ?? options.Name;
            options.Region = result.GetValue(region) ?? options.Region;
            options.TunnelPort = result.GetValue(tunnelPort) ?? options.TunnelPort;
            options.VisitorHttpPort = result.GetValue(httpPort) ?? options.VisitorHttpPort;
            if (result.GetValue(listen) is { } address)
            {
                options.TunnelAddress = address;
                options.VisitorAddress = address;
            }

            options.VisitorHttpsPort = result.GetValue(httpsPort) ?? options.VisitorHttpsPort;
            foreach (var pair in result.GetValue(certificates) ?? [])
            {
                var (certificatePath, keyPath) = SplitPemPair(pair);
                options.Certificates.Add(new Tunnel.Edge.Visitors.VisitorCertificateFile { CertificatePath = certificatePath, KeyPath = keyPath });
            }

            options.CertificateDirectory = result.GetValue(certificateDirectory)?.FullName ?? options.CertificateDirectory;
            options.HttpsRedirectHosts.AddRange(result.GetValue(redirectHosts) ?? []);
            options.AdminPort = result.GetValue(adminPort) ?? options.AdminPort;
            options.AdminAddress = result.GetValue(adminAddress) ?? options.AdminAddress;
            if (result.GetValue(adminAllow) is { Length: > 0 } networks)
            {
                options.AdminAllowedNetworks = [.. networks];
            }

            var cluster = options.Cluster;
            cluster.StoreEndpoints.AddRange(result.GetValue(etcd) ?? []);
            cluster.PeerPort = result.GetValue(peerPort) ?? cluster.PeerPort;
            cluster.PeerAddress = result.GetValue(peerListen) ?? result.GetValue(listen) ?? cluster.PeerAddress;
            cluster.AdvertiseAddress = result.GetValue(peerAdvertise) ?? cluster.AdvertiseAddress;
            if (result.GetValue(peerCertificate) is { } peerPair)
            {
                var (certificatePath, keyPath) = SplitPemPair(peerPair);
                (cluster.PeerCertificatePath, cluster.PeerKeyPath) = (certificatePath, keyPath ?? certificatePath);
            }

            cluster.StoreCaPath = result.GetValue(etcdCa) ?? cluster.StoreCaPath;
            if (result.GetValue(etcdCertificate) is { } storePair)
            {
                var (certificatePath, keyPath) = SplitPemPair(storePair);
                (cluster.StoreCertificatePath, cluster.StoreKeyPath) = (certificatePath, keyPath ?? certificatePath);
            }

            cluster.StoreUsername = result.GetValue(etcdUser) ?? cluster.StoreUsername;
            if (result.GetValue(etcdPasswordFile) is { } passwordFile)
            {
                if (Tunnel.Protocol.Credentials.SecretFilePermissions.Problem(passwordFile.FullName, "etcd password file") is { } problem)
                {
                    Console.Error.WriteLine($"tunnel-edge cannot start: --etcd-password-file: {problem}");
                    return 2;
                }

                try
                {
                    // One line; a trailing newline (echo > file) is not part of the password.
                    cluster.StorePassword = File.ReadAllText(passwordFile.FullName).TrimEnd('\r', '\n');
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"tunnel-edge cannot start: --etcd-password-file {passwordFile.FullName}: {ex.Message}");
                    return 2;
                }
            }

            if (result.GetValue(leaseTtl) is { } ttl)
            {
                cluster.LeaseTtl = TimeSpan.FromSeconds(ttl);
            }

            var arenas = NativeHeapArenas.LimitToCores();
            EdgeServer edge;
            try
            {
                edge = EdgeServer.Create(options);
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException or FormatException or System.Net.Sockets.SocketException)
            {
                Console.Error.WriteLine($"tunnel-edge cannot start: {ex.Message}");
                return 2;
            }

            await using (edge.ConfigureAwait(false))
            {
                await edge.StartAsync(cancellationToken).ConfigureAwait(false);
                if (arenas is { } count)
                {
                    EdgeLog.NativeHeapArenasLimited(edge.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("Tunnel.Edge.Hosting"), count);
                }

                var https = edge.VisitorHttpsEndPoint is { } endPoint ? $" and https://{endPoint}" : "";
                var admin = edge.AdminEndPoint is { } adminEndPoint ? $", status, metrics and admin API on http://{adminEndPoint}/" : "";
                var peers = edge.PeerEndPoint is { } peerEndPoint ? $", peers on https://{peerEndPoint} (advertised as {edge.PeerAdvertisedAddress})" : "";
                Console.WriteLine($"tunnel-edge {options.Name}: tunnels on {edge.TunnelEndPoint}, visitors on http://{edge.VisitorEndPoint}{https}{admin}{peers}");
                await edge.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }
}
