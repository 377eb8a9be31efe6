using System.CommandLine;
using System.Net;
using Microsoft.Extensions.Configuration;
using Tunnel.Edge;
using Tunnel.Edge.Hosting;
using Tunnel.Edge.Identity;

var root = new RootCommand("tunnel-edge: the edge server of a self-hosted tunnel for ASP.NET Core apps.");
root.Subcommands.Add(EdgeCommands.Init());
root.Subcommands.Add(EdgeCommands.Issue());
root.Subcommands.Add(EdgeCommands.IssueSite());
root.Subcommands.Add(EdgeCommands.IssueEdge());
root.Subcommands.Add(EdgeCommands.Serve());
// The host handles SIGTERM itself (drain, then exit 0); System.CommandLine's own handler would kill
// the process two seconds into the drain.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);

internal static class EdgeCommands
{
    public static Command Init()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "Where to write ca.pem, ca.key, edge.pem and edge.key.", Required = true };
        var name = new Option<string>("--name") { Description = "The CA's name.", DefaultValueFactory = _ => "Tunnel Edge CA" };
        var dns = new Option<string[]>("--dns") { Description = "DNS names of the edge (its tunnel port's TLS certificate).", DefaultValueFactory = _ => ["localhost"], AllowMultipleArgumentsPerToken = true };
        var ips = new Option<string[]>("--ip") { Description = "IP addresses of the edge.", DefaultValueFactory = _ => ["127.0.0.1", "::1"], AllowMultipleArgumentsPerToken = true };
        var days = new Option<int>("--days") { Description = "Validity of the CA in days (the edge certificate: a year at most).", DefaultValueFactory = _ => 3650 };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing CA." };
        var command = new Command("init", "Create the edge's CA and its TLS server certificate.") { dir, name, dns, ips, days, force };
        command.SetAction(result =>
        {
            var directory = result.GetValue(dir)!.FullName;
            var caPath = Path.Combine(directory, "ca.pem");
            if (File.Exists(caPath) && !result.GetValue(force))
            {
                Console.Error.WriteLine($"A CA already exists at {caPath}; pass --force to replace it (every issued origin certificate then stops working).");
                return 1;
            }

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

            using var ca = CertificateIssuer.CreateCertificateAuthority(result.GetValue(name)!, TimeSpan.FromDays(result.GetValue(days)));
            // Valid as client too, so the same edge.pem identifies the edge to its peers in a cluster.
            using var edge = CertificateIssuer.IssueEdgeCertificate(ca, result.GetValue(dns) ?? [], addresses, TimeSpan.FromDays(365));
            CertificateIssuer.WritePem(ca, caPath, Path.Combine(directory, "ca.key"));
            CertificateIssuer.WritePem(edge, Path.Combine(directory, "edge.pem"), Path.Combine(directory, "edge.key"));
            Console.WriteLine($"Wrote {caPath}, ca.key, edge.pem and edge.key in {directory}.");
            return 0;
        });
        return command;
    }

    public static Command Issue()
    {
        var dir = new Option<DirectoryInfo>("--dir") { Description = "The directory holding ca.pem and ca.key (from init).", Required = true };
        var domains = new Option<string[]>("--domain") { Description = "A hostname the origin may serve: exact (app.example.com) or wildcard (*.example.com). Repeatable.", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Path prefix of the files to write: PREFIX.pem and PREFIX.key.", Required = true };
        var days = new Option<int>("--days") { Description = "Validity in days.", DefaultValueFactory = _ => 90 };
        var command = new Command("issue", "Issue an origin's client certificate for its domains.") { dir, domains, output, days };
        command.SetAction(result =>
        {
            var directory = result.GetValue(dir)!.FullName;
            try
            {
                using var ca = CertificateIssuer.LoadPem(Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
                using var origin = CertificateIssuer.IssueOriginCertificate(ca, result.GetValue(domains)!, TimeSpan.FromDays(result.GetValue(days)));
                var prefix = result.GetValue(output)!;
                CertificateIssuer.WritePem(origin, prefix + ".pem", prefix + ".key");
                Console.WriteLine($"Wrote {prefix}.pem and {prefix}.key for {string.Join(", ", result.GetValue(domains)!)}, valid until {origin.NotAfter:yyyy-MM-dd}.");
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
        var etcd = new Option<string[]>("--etcd") { Description = "An etcd client URL (http://host:2379) of the cluster's route store; repeatable. Without it the edge runs alone.", AllowMultipleArgumentsPerToken = true };
        var peerPort = new Option<int?>("--peer-port") { Description = "The inter-edge port, mutual TLS (default 7845)." };
        var peerListen = new Option<string?>("--peer-listen") { Description = "The IP address the inter-edge port listens on (default --listen, else 0.0.0.0)." };
        var peerAdvertise = new Option<string?>("--peer-advertise") { Description = "host:port the other edges dial to reach this one (default the inter-edge address and port)." };
        var peerCertificate = new Option<string?>("--peer-cert") { Description = "The edge's certificate for the inter-edge port, CERT.pem:KEY.pem (default edge.pem; from issue-edge)." };
        var leaseTtl = new Option<double?>("--lease-ttl") { Description = "Seconds the edge's routes outlive it in the cluster (default 5)." };
        var command = new Command("serve", "Run the edge.") { config, dir, name, region, tunnelPort, httpPort, listen, httpsPort, certificates, certificateDirectory, redirectHosts, adminPort, adminAddress, etcd, peerPort, peerListen, peerAdvertise, peerCertificate, leaseTtl };
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
            if (result.GetValue(dir) is { } directory)
            {
                options.CaCertificatePath ??= Path.Combine(directory.FullName, "ca.pem");
                options.ServerCertificatePath ??= Path.Combine(directory.FullName, "edge.pem");
                options.ServerKeyPath ??= Path.Combine(directory.FullName, "edge.key");
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
                // Split at the last ':' so a Windows drive letter stays with its path.
                var colon = pair.LastIndexOf(':');
                options.Certificates.Add(colon > 1
                    ? new Tunnel.Edge.Visitors.VisitorCertificateFile { CertificatePath = pair[..colon], KeyPath = pair[(colon + 1)..] }
                    : new Tunnel.Edge.Visitors.VisitorCertificateFile { CertificatePath = pair });
            }

            options.CertificateDirectory = result.GetValue(certificateDirectory)?.FullName ?? options.CertificateDirectory;
            options.HttpsRedirectHosts.AddRange(result.GetValue(redirectHosts) ?? []);
            options.AdminPort = result.GetValue(adminPort) ?? options.AdminPort;
            options.AdminAddress = result.GetValue(adminAddress) ?? options.AdminAddress;
            var cluster = options.Cluster;
            cluster.StoreEndpoints.AddRange(result.GetValue(etcd) ?? []);
            cluster.PeerPort = result.GetValue(peerPort) ?? cluster.PeerPort;
            cluster.PeerAddress = result.GetValue(peerListen) ?? result.GetValue(listen) ?? cluster.PeerAddress;
            cluster.AdvertiseAddress = result.GetValue(peerAdvertise) ?? cluster.AdvertiseAddress;
            if (result.GetValue(peerCertificate) is { } peerPair)
            {
                var colon = peerPair.LastIndexOf(':');
                (cluster.PeerCertificatePath, cluster.PeerKeyPath) = colon > 1 ? (peerPair[..colon], peerPair[(colon + 1)..]) : (peerPair, peerPair);
            }

            if (result.GetValue(leaseTtl) is { } ttl)
            {
                cluster.LeaseTtl = TimeSpan.FromSeconds(ttl);
            }

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
                var https = edge.VisitorHttpsEndPoint is { } endPoint ? $" and https://{endPoint}" : "";
                var admin = edge.AdminEndPoint is { } adminEndPoint ? $", status and metrics on http://{adminEndPoint}/" : "";
                var peers = edge.PeerEndPoint is { } peerEndPoint ? $", peers on https://{peerEndPoint} (advertised as {edge.PeerAdvertisedAddress})" : "";
                Console.WriteLine($"tunnel-edge {options.Name}: tunnels on {edge.TunnelEndPoint}, visitors on http://{edge.VisitorEndPoint}{https}{admin}{peers}");
                await edge.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }
}
