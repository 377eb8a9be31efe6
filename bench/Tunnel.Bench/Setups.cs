using System.Globalization;
using System.Text.RegularExpressions;

namespace Tunnel.Bench;

/// <summary>One way of reaching the app: where wrk and h2load connect, and which Host they send.</summary>
/// <param name="Name">Row name in the table.</param>
/// <param name="Http1Port">Cleartext HTTP/1.1 port.</param>
/// <param name="Http2Port">Cleartext HTTP/2 (prior knowledge) port, or <c>null</c> when the setup has none.</param>
/// <param name="Host">The Host / :authority to send, or <c>null</c> for the default.</param>
/// <param name="NoHttp2Reason">Why there is no HTTP/2 port.</param>
internal sealed record Setup(string Name, int Http1Port, int? Http2Port, string? Host, string? NoHttp2Reason = null) : IRelaySetup
{
    /// <summary>The processes between the load generator and the app (their descendants included when measured); none for direct Kestrel.</summary>
    public IReadOnlyList<int> RelayPids { get; init; } = [];

    /// <summary>
    /// TLS to the setup: https URLs to <see cref="Setups.TlsHostname"/> (so that the ClientHello names it),
    /// HTTP/2 by ALPN on the same port, the app's self-signed certificate not checked.
    /// </summary>
    public bool Https { get; init; }

    public string Http1Url(string path) => Url(Http1Port, path);

    public string Http2Url(string path) => Url(Http2Port!.Value, path);

    private string Url(int port, string path) => Https
        ? $"https://{Setups.TlsHostname}:{port.ToString(CultureInfo.InvariantCulture)}{path}"
        : $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}{path}";
}

/// <summary>One way of reaching the app's plain TCP service (HelloOrigin's ByteService), for the TCP rows.</summary>
/// <param name="Name">Column name.</param>
/// <param name="Port">Where the client connects.</param>
/// <param name="RelayPids">The processes between the client and the service (their descendants included).</param>
internal sealed record TcpSetup(string Name, int Port, IReadOnlyList<int> RelayPids) : IRelaySetup;

/// <summary>What the driver needs of any setup to measure it: its column and the processes whose CPU is the relay's.</summary>
internal interface IRelaySetup
{
    string Name { get; }

    IReadOnlyList<int> RelayPids { get; }
}

/// <summary>A setup that could not start: its row says why.</summary>
internal sealed record UnavailableSetup(string Name, string Reason);

/// <summary>Starts the app and every setup in front of it, all on loopback.</summary>
internal sealed partial class Setups(BenchProcesses processes, string workDirectory)
{
    public const string Hostname = "bench.local";

    /// <summary>The hostname the app declares for HTTP passthrough: the edge carries its connections whole.</summary>
    public const string PassthroughHostname = "pass.bench.local";

    /// <summary>The hostname the app declares for TLS passthrough. "localhost", so that wrk, which names the URL's host in its ClientHello, reaches the edge on loopback with it.</summary>
    public const string TlsHostname = "localhost";

    /// <summary>The hostname of the TCP route, whose edge port relays to the app's plain TCP service.</summary>
    public const string TcpHostname = "tcp.bench.local";

    public const string Direct = "direct Kestrel";
    public const string Tunnel = "tunnel (edge + plugin)";
    public const string TunnelPassthrough = "tunnel, HTTP passthrough";
    public const string TunnelTcpRoute = "tunnel, TCP route";
    public const string DirectHttps = "direct Kestrel HTTPS";
    public const string TunnelTlsPassthrough = "tunnel, TLS passthrough";
    public const string Nginx = "nginx proxy";
    public const string NginxStream = "nginx stream";
    public const string Ssh = "ssh -R";
    public const string PageKite = "PageKite";

    public List<Setup> Available { get; } = [];

    public List<UnavailableSetup> Unavailable { get; } = [];

    /// <summary>The ways to the app's plain TCP service: directly, the TCP route, nginx stream, ssh -R.</summary>
    public List<TcpSetup> Tcp { get; } = [];

    public Pki Pki { get; private set; } = null!;

    /// <summary>The origin's direct Kestrel ports, that nginx, ssh and PageKite forward to.</summary>
    public int OriginHttp1Port { get; private set; }

    public int OriginHttp2Port { get; private set; }

    /// <summary>The app's plain TCP service (ByteService), that the TCP route, nginx stream and ssh relay to.</summary>
    public int ServicePort { get; private set; }

    /// <summary>The app's process, which serves every setup.</summary>
    public int AppPid { get; private set; }

    public async Task StartAsync()
    {
        Pki = await Pki.CreateAsync(Path.Combine(workDirectory, "pki")).ConfigureAwait(false);

        // The edge first: the app dials it at start-up.
        var tcpRoutePort = BenchProcesses.FreePort();
        var edge = await EdgeNode.StartAsync(processes, Pki, "bench-edge", passthrough: true, tcpRoutes: [(tcpRoutePort, TcpHostname)]).ConfigureAwait(false);
        OriginHttp1Port = BenchProcesses.FreePort();
        OriginHttp2Port = BenchProcesses.FreePort();
        var originHttpsPort = BenchProcesses.FreePort();
        ServicePort = BenchProcesses.FreePort();
        var origin = processes.StartDotnet("HelloOrigin", "HelloOrigin.dll", [], new Dictionary<string, string>
        {
            ["Kestrel__Endpoints__h1__Url"] = $"http://127.0.0.1:{OriginHttp1Port}",
            ["Kestrel__Endpoints__h1__Protocols"] = "Http1",
            ["Kestrel__Endpoints__h2__Url"] = $"http://127.0.0.1:{OriginHttp2Port}",
            ["Kestrel__Endpoints__h2__Protocols"] = "Http2",
            ["Tunnel__Edges__0"] = $"127.0.0.1:{edge.TunnelPort}",
            ["Tunnel__Hostnames__0"] = Hostname,
            ["Kestrel__Endpoints__tls__Url"] = $"https://127.0.0.1:{originHttpsPort}",
            ["Kestrel__Endpoints__tls__Protocols"] = "Http1AndHttp2",
            ["Kestrel__Endpoints__tls__Certificate__Path"] = Pki.SiteCertificate,
            ["Kestrel__Endpoints__tls__Certificate__KeyPath"] = Pki.SiteKey,
            ["Hello__HttpPassthroughHost"] = PassthroughHostname,
            ["Hello__TlsPassthroughHost"] = TlsHostname,
            ["Hello__TlsCertificatePath"] = Pki.SiteCertificate,
            ["Hello__TlsKeyPath"] = Pki.SiteKey,
            ["Hello__TcpServicePort"] = ServicePort.ToString(CultureInfo.InvariantCulture),
            ["Hello__TcpRouteHost"] = TcpHostname,
            ["Tunnel__CertificatePath"] = Pki.OriginCertificate,
            ["Tunnel__CertificateKeyPath"] = Pki.OriginKey,
            ["Tunnel__EdgeCaPath"] = Pki.CaCertificate,
            ["Tunnel__EdgeServerName"] = "localhost",
            ["Logging__LogLevel__Default"] = "Warning",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
        });
        AppPid = origin.Id;
        await BenchProcesses.WaitForPortAsync(OriginHttp1Port, TimeSpan.FromSeconds(60), origin).ConfigureAwait(false);
        await BenchProcesses.WaitForPortAsync(OriginHttp2Port, TimeSpan.FromSeconds(10), origin).ConfigureAwait(false);
        await BenchProcesses.WaitForPortAsync(ServicePort, TimeSpan.FromSeconds(10), origin).ConfigureAwait(false);
        Available.Add(new Setup(Direct, OriginHttp1Port, OriginHttp2Port, null));
        Tcp.Add(new TcpSetup(Direct, ServicePort, []));
        var directHttps = new Setup(DirectHttps, originHttpsPort, originHttpsPort, null) { Https = true };
        await ExpectOkAsync(directHttps).ConfigureAwait(false);
        Available.Add(directHttps);

        await edge.WaitForTunnelsAsync(4, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        var tunnel = new Setup(Tunnel, edge.VisitorPort, edge.VisitorPort, Hostname) { RelayPids = [edge.Process.Id] };
        await ExpectOkAsync(tunnel).ConfigureAwait(false);
        Available.Add(tunnel);
        var passthrough = new Setup(TunnelPassthrough, edge.VisitorPort, edge.VisitorPort, PassthroughHostname) { RelayPids = [edge.Process.Id] };
        await ExpectOkAsync(passthrough).ConfigureAwait(false);
        Available.Add(passthrough);
        var tls = new Setup(TunnelTlsPassthrough, edge.VisitorHttpsPort, edge.VisitorHttpsPort, null) { Https = true, RelayPids = [edge.Process.Id] };
        await ExpectOkAsync(tls).ConfigureAwait(false);
        Available.Add(tls);
        Tcp.Add(new TcpSetup(TunnelTcpRoute, tcpRoutePort, [edge.Process.Id]));

        await TryAsync(Nginx, StartNginxAsync).ConfigureAwait(false);
        await TryAsync(NginxStream, StartNginxStreamAsync).ConfigureAwait(false);
        await TryAsync(Ssh, StartSshAsync).ConfigureAwait(false);
        await TryAsync(PageKite, StartPageKiteAsync).ConfigureAwait(false);
    }

    private async Task TryAsync(string name, Func<Task<Setup>> start)
    {
        try
        {
            var setup = await start().ConfigureAwait(false);
            await ExpectOkAsync(setup).ConfigureAwait(false);
            Available.Add(setup);
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or IOException or System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine($"{name} is not available: {ex.Message}");
            Unavailable.Add(new UnavailableSetup(name, ex.Message.Split('\n')[0]));
        }
    }

    /// <summary>One GET / through the setup must answer 200 before it is measured.</summary>
    private static async Task ExpectOkAsync(Setup setup)
    {
        string[] arguments = ["-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", .. HostArguments(setup), setup.Http1Url("/")];
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string status;
        do
        {
            status = (await Tool.RunAsync("curl", arguments, TimeSpan.FromSeconds(10)).ConfigureAwait(false)).Output.Trim();
            if (status == "200")
            {
                return;
            }

            await Task.Delay(200).ConfigureAwait(false);
        }
        while (DateTime.UtcNow < deadline);

        throw new InvalidOperationException($"{setup.Name}: GET / answered {status}, not 200.");
    }

    private static string[] HostArguments(Setup setup) => setup.Host is null ? [] : ["-H", "Host: " + setup.Host];

    private async Task<Setup> StartNginxAsync()
    {
        var directory = Directory.CreateDirectory(Path.Combine(workDirectory, "nginx")).FullName;
        var http1 = BenchProcesses.FreePort();
        var http2 = BenchProcesses.FreePort();
        var user = Environment.UserName == "root" ? "user root;" : "";

        // The configuration a relay should match: upstream keep-alive, streamed bodies both ways, no access log,
        // connections not closed after a request count.
        await File.WriteAllTextAsync(Path.Combine(directory, "nginx.conf"), $$"""
            {{user}}
            worker_processes auto;
            pid {{directory}}/nginx.pid;
            error_log {{directory}}/error.log warn;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path {{directory}}/body;
              proxy_temp_path {{directory}}/proxy;
              fastcgi_temp_path {{directory}}/fastcgi;
              uwsgi_temp_path {{directory}}/uwsgi;
              scgi_temp_path {{directory}}/scgi;
              # Load generators reuse connections for far more than nginx's default 1000 requests.
              keepalive_requests 10000000;
              upstream origin { server 127.0.0.1:{{OriginHttp1Port}}; keepalive 64; keepalive_requests 10000000; }
              server {
                listen 127.0.0.1:{{http1}};
                listen 127.0.0.1:{{http2}} http2;
                client_max_body_size 0;
                location / {
                  proxy_pass http://origin;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_set_header Host $host;
                  proxy_request_buffering off;
                  proxy_buffering off;
                  proxy_buffer_size 64k;
                  proxy_buffers 8 64k;
                  proxy_busy_buffers_size 128k;
                }
              }
            }
            """).ConfigureAwait(false);
        var nginx = processes.Start("nginx", "nginx", ["-p", directory, "-c", Path.Combine(directory, "nginx.conf"), "-g", "daemon off;"]);
        await BenchProcesses.WaitForPortAsync(http1, TimeSpan.FromSeconds(10), nginx).ConfigureAwait(false);
        await BenchProcesses.WaitForPortAsync(http2, TimeSpan.FromSeconds(10), nginx).ConfigureAwait(false);
        return new Setup(Nginx, http1, http2, null) { RelayPids = [nginx.Id] };
    }

    /// <summary>
    /// nginx's <c>stream</c> module (Debian's libnginx-mod-stream), the L4 anchor: one proxy_pass port to each
    /// of the app's HTTP ports (HTTP passthrough's peer) and one to its plain TCP service (the TCP route's).
    /// </summary>
    private async Task<Setup> StartNginxStreamAsync()
    {
        const string Module = "/usr/lib/nginx/modules/ngx_stream_module.so";
        if (!File.Exists(Module))
        {
            throw new InvalidOperationException($"{Module} is missing (apt-get install libnginx-mod-stream)");
        }

        var directory = Directory.CreateDirectory(Path.Combine(workDirectory, "nginx-stream")).FullName;
        var http1 = BenchProcesses.FreePort();
        var http2 = BenchProcesses.FreePort();
        var tcp = BenchProcesses.FreePort();
        var user = Environment.UserName == "root" ? "user root;" : "";
        await File.WriteAllTextAsync(Path.Combine(directory, "nginx.conf"), $$"""
            load_module {{Module}};
            {{user}}
            worker_processes auto;
            pid {{directory}}/nginx.pid;
            error_log {{directory}}/error.log warn;
            events { worker_connections 4096; }
            stream {
              proxy_connect_timeout 5s;
              proxy_timeout 10m;
              server { listen 127.0.0.1:{{http1}}; proxy_pass 127.0.0.1:{{OriginHttp1Port}}; }
              server { listen 127.0.0.1:{{http2}}; proxy_pass 127.0.0.1:{{OriginHttp2Port}}; }
              server { listen 127.0.0.1:{{tcp}}; proxy_pass 127.0.0.1:{{ServicePort}}; }
            }
            """).ConfigureAwait(false);
        var nginx = processes.Start("nginx stream", "nginx", ["-p", directory, "-c", Path.Combine(directory, "nginx.conf"), "-g", "daemon off;"]);
        await BenchProcesses.WaitForPortAsync(http1, TimeSpan.FromSeconds(10), nginx).ConfigureAwait(false);
        await BenchProcesses.WaitForPortAsync(tcp, TimeSpan.FromSeconds(10), nginx).ConfigureAwait(false);
        Tcp.Add(new TcpSetup(NginxStream, tcp, [nginx.Id]));
        return new Setup(NginxStream, http1, http2, null) { RelayPids = [nginx.Id] };
    }

    private async Task<Setup> StartSshAsync()
    {
        var directory = Directory.CreateDirectory(Path.Combine(workDirectory, "ssh")).FullName;
        var hostKey = Path.Combine(directory, "host_key");
        var userKey = Path.Combine(directory, "user_key");
        await Tool.RunCheckedAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey], TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        await Tool.RunCheckedAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", userKey], TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        var authorizedKeys = Path.Combine(directory, "authorized_keys");
        File.Copy(userKey + ".pub", authorizedKeys, overwrite: true);
        var port = BenchProcesses.FreePort();
        var config = Path.Combine(directory, "sshd_config");
        await File.WriteAllTextAsync(config, $"""
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {hostKey}
            PidFile {directory}/sshd.pid
            AuthorizedKeysFile {authorizedKeys}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            AllowTcpForwarding yes

            """).ConfigureAwait(false);

        // sshd's privilege separation directory.
        Directory.CreateDirectory("/run/sshd");
        var sshd = processes.Start("sshd", "/usr/sbin/sshd", ["-D", "-e", "-f", config]);
        await BenchProcesses.WaitForPortAsync(port, TimeSpan.FromSeconds(10), sshd).ConfigureAwait(false);

        // Port 0: sshd picks the remote ports and the client prints them.
        var client = processes.Start("ssh -R", "ssh", ["-N", "-i", userKey, "-p", port.ToString(CultureInfo.InvariantCulture),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
            "-R", $"127.0.0.1:0:127.0.0.1:{OriginHttp1Port}", "-R", $"127.0.0.1:0:127.0.0.1:{OriginHttp2Port}", "-R", $"127.0.0.1:0:127.0.0.1:{ServicePort}",
            $"{Environment.UserName}@127.0.0.1"]);
        var http1 = await client.WaitForLineAsync(AllocatedPort(OriginHttp1Port), TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        var http2 = await client.WaitForLineAsync(AllocatedPort(OriginHttp2Port), TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        var service = await client.WaitForLineAsync(AllocatedPort(ServicePort), TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        Tcp.Add(new TcpSetup(Ssh, int.Parse(service.Groups[1].Value, CultureInfo.InvariantCulture), [sshd.Id, client.Id]));
        return new Setup(Ssh, int.Parse(http1.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(http2.Groups[1].Value, CultureInfo.InvariantCulture), null)
        {
            RelayPids = [sshd.Id, client.Id],
        };
    }

    private static Regex AllocatedPort(int target) => new($@"Allocated port (\d+) for remote forward to 127\.0\.0\.1:{target}\b");

    private async Task<Setup> StartPageKiteAsync()
    {
        var directory = Directory.CreateDirectory(Path.Combine(workDirectory, "pagekite")).FullName;
        var port = BenchProcesses.FreePort();
        var secret = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var frontEnd = processes.Start("pagekite front-end", "pagekite", ["--clean", "--nullui", "--nocrashreport", "--isfrontend", "--host=127.0.0.1",
            $"--ports={port}", "--protos=http", $"--domain=http:{Hostname}:{secret}", $"--logfile={directory}/frontend.log"]);
        await BenchProcesses.WaitForPortAsync(port, TimeSpan.FromSeconds(20), frontEnd).ConfigureAwait(false);
        // --keepalive: Debian's PageKite 1.5.2 front-end crashes answering the back-end's tunnel PING under
        // Python 3 (SendPong compares a None quota with 0, "Corrupt chunk"), which the back-end sends
        // after 116 s; the tunnel then drops, and the front-end dies with "Too much data" once load
        // comes back over the new one, answering every request with an error page for the rest of the
        // run. A day between pings keeps the tunnel it made at the start for the whole run.
        var backEnd = processes.Start("pagekite back-end", "pagekite", ["--clean", "--nullui", "--nocrashreport", $"--frontend=127.0.0.1:{port}",
            "--keepalive=86400", $"--service_on=http:{Hostname}:127.0.0.1:{OriginHttp1Port}:{secret}", $"--logfile={directory}/backend.log"]);

        // HTTP/1.1 only: PageKite routes by the Host header of each HTTP/1 connection.
        return new Setup(PageKite, port, null, Hostname, "PageKite relays HTTP/1 only") { RelayPids = [frontEnd.Id, backEnd.Id] };
    }
}
