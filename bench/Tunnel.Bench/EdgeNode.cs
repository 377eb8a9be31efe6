using System.Globalization;
using System.Text.RegularExpressions;

namespace Tunnel.Bench;

/// <summary>A <c>tunnel-edge serve</c> process on loopback with free ports, and its tunnel count from /metrics.</summary>
internal sealed partial class EdgeNode
{
    private static readonly HttpClient Admin = new() { Timeout = TimeSpan.FromSeconds(30) };

    private EdgeNode(BenchProcess process)
    {
        Process = process;
    }

    public BenchProcess Process { get; }

    public int TunnelPort { get; private set; }

    public int VisitorPort { get; private set; }

    public int AdminPort { get; private set; }

    /// <summary>The visitor HTTPS port (TLS passthrough), or 0 when the edge has none.</summary>
    public int VisitorHttpsPort { get; private set; }

    /// <summary>
    /// Starts an edge. With <paramref name="passthrough"/>, its HTTPS port opens for TLS passthrough
    /// routes (the edge holds no certificate for them) and <paramref name="tcpRoutes"/> (edge port,
    /// hostname) are its TCP routes.
    /// </summary>
    public static async Task<EdgeNode> StartAsync(BenchProcesses processes, Pki pki, string name, bool passthrough = false, IReadOnlyList<(int Port, string Hostname)>? tcpRoutes = null)
    {
        // The benchmarks open a thousand tunnels with the one origin credential of their PKI: lift the
        // cap per credential, which guards tenants from each other, not an edge from its benchmark.
        // Likewise every visitor is the driver on 127.0.0.1: lift the cap on one address's connections.
        var settings = new Dictionary<string, string>
        {
            ["TUNNEL_EDGE_Edge__MaxTunnelConnectionsPerCredential"] = "1000000",
            ["TUNNEL_EDGE_Edge__Limits__MaxConnectionsPerVisitor"] = "1000000",
        };
        if (passthrough)
        {
            settings["TUNNEL_EDGE_Edge__Connections__TlsPassthrough"] = "true";
        }

        foreach (var (route, index) in (tcpRoutes ?? []).Select((r, i) => (r, i)))
        {
            settings[$"TUNNEL_EDGE_Edge__Connections__TcpRoutes__{index}__Port"] = route.Port.ToString(CultureInfo.InvariantCulture);
            settings[$"TUNNEL_EDGE_Edge__Connections__TcpRoutes__{index}__Hostname"] = route.Hostname;
        }

        var process = processes.StartDotnet(name, "tunnel-edge.dll", ["serve", "--dir", pki.Directory, "--listen", "127.0.0.1", "--name", name,
            "--tunnel-port", "0", "--http-port", "0", "--https-port", passthrough ? "0" : "-1", "--admin-port", "0"], settings);
        var ready = await process.WaitForLineAsync(ReadyLine(), TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        return new EdgeNode(process)
        {
            TunnelPort = int.Parse(ready.Groups["tunnel"].Value, CultureInfo.InvariantCulture),
            VisitorPort = int.Parse(ready.Groups["visitor"].Value, CultureInfo.InvariantCulture),
            VisitorHttpsPort = ready.Groups["https"].Success ? int.Parse(ready.Groups["https"].Value, CultureInfo.InvariantCulture) : 0,
            AdminPort = int.Parse(ready.Groups["admin"].Value, CultureInfo.InvariantCulture),
        };
    }

    /// <summary>Registered tunnel connections, from the edge's own Prometheus endpoint.</summary>
    public async Task<int> TunnelCountAsync() => TunnelCount(await ScrapeAsync().ConfigureAwait(false));

    /// <summary>The edge's <c>/metrics</c> text.</summary>
    public Task<string> ScrapeAsync() => Admin.GetStringAsync(new Uri($"http://127.0.0.1:{AdminPort}/metrics"));

    /// <summary>Registered tunnel connections in a scrape.</summary>
    public static int TunnelCount(string scrape) => (int)MetricSum(scrape, "tunnel_edge_tunnels");

    /// <summary>The sum of every series of a metric in a scrape (0 when it has none).</summary>
    public static double MetricSum(string scrape, string name)
    {
        var sum = 0.0;
        foreach (var line in scrape.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && line.Length > name.Length && (line[name.Length] == ' ' || line[name.Length] == '{'))
            {
                sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    public async Task WaitForTunnelsAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var seen = 0;
        while (true)
        {
            try
            {
                if ((seen = await TunnelCountAsync().ConfigureAwait(false)) >= count)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // A busy edge (a thousand handshakes on two cores) may answer its admin port late.
            }

            if (DateTime.UtcNow > deadline || Process.HasExited)
            {
                throw new TimeoutException($"{Process.Name} has {seen} of {count} tunnel connections after {timeout.TotalSeconds:0} s.");
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    [GeneratedRegex(@"tunnels on [^\s]+:(?<tunnel>\d+), visitors on http://[^\s]+:(?<visitor>\d+)(?: and https://[^\s]+:(?<https>\d+))?.*metrics[^:]* on http://[^\s]+:(?<admin>\d+)/")]
    private static partial Regex ReadyLine();
}
