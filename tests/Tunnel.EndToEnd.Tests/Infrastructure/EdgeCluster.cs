using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Transport;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A cluster for tests: a real etcd behind a <see cref="FaultProxy"/> (so it can die and come back on
/// another port while the edges keep one address), <c>tunnel-edge serve</c> processes joined to it,
/// and HelloOrigin apps in this process dialing chosen edges.
/// </summary>
public sealed partial class EdgeCluster : IAsyncDisposable
{
    private readonly List<EdgeProcess> _edges = [];
    private readonly List<WebApplication> _origins = [];

    private readonly bool _tlsStore;
    private readonly string? _storePassword;

    private EdgeCluster(TestPki pki, EtcdProcess etcd, FaultProxy storeProxy, string peerCertificate, string peerKey, bool tlsStore, string? storePassword)
    {
        _tlsStore = tlsStore;
        _storePassword = storePassword;
        Pki = pki;
        Etcd = etcd;
        StoreProxy = storeProxy;
        PeerCertificatePath = peerCertificate;
        PeerKeyPath = peerKey;
    }

    public TestPki Pki { get; }

    public EtcdProcess Etcd { get; }

    /// <summary>The address the edges know etcd by.</summary>
    public FaultProxy StoreProxy { get; }

    /// <summary>An edge certificate (server and client) the edges show each other.</summary>
    public string PeerCertificatePath { get; }

    public string PeerKeyPath { get; }

    public string Output => string.Join("\n", _edges.Select(e => e.Output)) + "\n[etcd]\n" + Etcd.Output;

    /// <summary>Starts etcd; with <paramref name="tlsStore"/>, etcd requires TLS and a client certificate from the edge CA, and the edges present the peer certificate.</summary>
    /// <remarks>With <paramref name="storePassword"/>, etcd has authentication on, and the edges log in as <c>root</c> with it.</remarks>
    public static async Task<EdgeCluster> StartAsync(bool tlsStore = false, string? storePassword = null)
    {
        var pki = new TestPki();
        using var peer = CertificateIssuer.IssueEdgeCertificate(pki.Ca, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1));
        var certificate = Path.Combine(pki.Directory, "peer.pem");
        var key = Path.Combine(pki.Directory, "peer.key");
        CertificateIssuer.WritePem(peer, certificate, key);
        var etcd = await EtcdProcess.StartAsync(tlsStore ? new EtcdProcess.StoreTls(pki.CaPath, certificate, key) : null, storePassword);
        var proxy = FaultProxy.Start(new IPEndPoint(IPAddress.Loopback, etcd.ClientPort));
        return new EdgeCluster(pki, etcd, proxy, certificate, key, tlsStore, storePassword);
    }

    /// <summary>Starts an edge process in the cluster.</summary>
    /// <param name="storePassword">With an etcd that has authentication on: the password this edge logs in with, instead of the right one.</param>
    /// <param name="directory">The edge's own directory (<c>serve --dir</c>) instead of the PKI's, which every edge shares.</param>
    /// <param name="peerCertificate">Whether the edge shows <see cref="PeerCertificatePath"/> to peers; otherwise its directory's <c>edge.pem</c>.</param>
    /// <param name="extraArguments">More <c>serve</c> flags; <c>--listen</c> or <c>--http-port</c> among them replace the defaults.</param>
    public async Task<EdgeProcess> StartEdgeAsync(string name, string region, double leaseTtlSeconds = 3, string? advertise = null, string? configPath = null, bool storeCertificate = true, string? storePassword = null,
        string? directory = null, bool peerCertificate = true, params string[] extraArguments)
    {

        string[] store = _tlsStore
            ? ["--etcd", $"https://127.0.0.1:{StoreProxy.EndPoint.Port}", "--etcd-ca", Pki.CaPath, .. storeCertificate ? (string[])["--etcd-cert", $"{PeerCertificatePath}:{PeerKeyPath}"] : []]
            : ["--etcd", $"http://127.0.0.1:{StoreProxy.EndPoint.Port}"];
        if (_storePassword is not null)
        {
            var passwordFile = Path.Combine(Pki.Directory, $"etcd-password-{name}");
            TestPki.WriteSecret(passwordFile, (storePassword ?? _storePassword) + "\n");
            store = [.. store, "--etcd-user", "root", "--etcd-password-file", passwordFile];
        }
        string[] arguments = [.. store, "--peer-port", "0", .. peerCertificate ? (string[])["--peer-cert", $"{PeerCertificatePath}:{PeerKeyPath}"] : [],
            "--lease-ttl", leaseTtlSeconds.ToString(CultureInfo.InvariantCulture), .. advertise is null ? [] : (string[])["--peer-advertise", advertise],
            .. configPath is null ? [] : (string[])["--config", configPath], .. extraArguments];
        var edge = await EdgeProcess.StartAsync(directory ?? Pki.Directory, name, region, arguments);
        _edges.Add(edge);
        return edge;
    }

    /// <summary>
    /// Starts a HelloOrigin app serving <paramref name="hostname"/> through the given edges only
    /// (<paramref name="configureTunnel"/> may change that, e.g. to an SRV name).
    /// </summary>
    public async Task<WebApplication> StartOriginAsync(string hostname, IEnumerable<EdgeProcess> edges, int haConnections = 4, Action<WebApplication>? configureApp = null, Action<TunnelOptions>? configureTunnel = null, Action<WebApplicationBuilder>? configureBuilder = null)
    {
        var (certificatePath, keyPath) = Pki.IssueOrigin(hostname);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseTunnelTransport(tunnel =>
        {
            tunnel.Edges = [.. edges.Select(e => $"127.0.0.1:{e.TunnelPort}")];
            tunnel.Hostnames = [hostname];
            tunnel.CertificatePath = certificatePath;
            tunnel.CertificateKeyPath = keyPath;
            tunnel.EdgeCaPath = Pki.CaPath;
            tunnel.EdgeServerName = "localhost";
            tunnel.HaConnections = haConnections;
            configureTunnel?.Invoke(tunnel);
        });
        configureBuilder?.Invoke(builder);
        var app = builder.Build();
        app.MapHelloEndpoints();
        configureApp?.Invoke(app);
        await app.StartAsync();
        _origins.Add(app);
        return app;
    }

    /// <summary>An HTTP client whose connections come from <paramref name="from"/> (a loopback address), so the app can tell the visitor from the edges.</summary>
    public static HttpClient VisitorClient(IPAddress from) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(from, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
    })
    { Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>GET <paramref name="path"/> for <paramref name="host"/> at an edge's visitor port.</summary>
    public static async Task<(HttpStatusCode Status, string Body)> GetAsync(HttpClient client, EdgeProcess edge, string host, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{edge.VisitorPort}{path}");
        request.Headers.Host = host;
        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>An edge's <c>/metrics</c> text.</summary>
    public static async Task<string> MetricsAsync(EdgeProcess edge)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await client.GetStringAsync($"http://127.0.0.1:{edge.AdminPort}/metrics");
    }

    /// <summary>The value of one series in Prometheus text (name and labels as written), or <c>null</c>.</summary>
    public static double? Series(string metrics, string name, params (string Label, string Value)[] labels)
    {
        foreach (var line in metrics.Split('\n'))
        {
            var match = SeriesLine().Match(line);
            if (!match.Success || match.Groups["name"].Value != name)
            {
                continue;
            }

            var text = match.Groups["labels"].Value;
            if (labels.All(l => text.Contains($"{l.Label}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                return double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    /// <summary>Polls an asynchronous condition (exceptions count as not yet) until it holds or the timeout passes.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        string? last = null;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                last = ex.Message;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0.#} s waiting until {what}.{(last is null ? "" : " Last error: " + last)}");
            }

            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var origin in _origins)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await origin.StopAsync(stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            await origin.DisposeAsync();
        }

        foreach (var edge in _edges)
        {
            await edge.DisposeAsync();
        }

        await StoreProxy.DisposeAsync();
        await Etcd.DisposeAsync();
        Pki.Dispose();
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>[^ ]+)")]
    private static partial Regex SeriesLine();
}
