using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge;
using Tunnel.Edge.Hosting;
using Tunnel.Transport;

namespace Tunnel.Testing;

/// <summary>
/// A real edge and real HelloOrigin apps in this process, on loopback ports the OS picks, with real
/// TLS between them. Each has its own log capture.
/// </summary>
public sealed class TunnelHarness : IAsyncDisposable
{
    public const string Hostname = "hello.test";

    private readonly List<WebApplication> _origins = [];

    private TunnelHarness(TestPki pki, EdgeServer edge, LogCapture edgeLogs)
    {
        Pki = pki;
        Edge = edge;
        EdgeLogs = edgeLogs;
    }

    public TestPki Pki { get; }

    public EdgeServer Edge { get; }

    public LogCapture EdgeLogs { get; }

    public int VisitorPort => Edge.VisitorEndPoint.Port;

    public string VisitorUrl(string path, string host = Hostname) => $"http://{host}:{VisitorPort}{path}";

    /// <summary>curl arguments that send a request for <paramref name="host"/> to the edge.</summary>
    public string[] CurlResolve(string host = Hostname) => ["--resolve", $"{host}:{VisitorPort}:127.0.0.1"];

    private readonly List<EdgeServer> _extraEdges = [];

    public static async Task<TunnelHarness> StartAsync(Action<EdgeOptions>? configureEdge = null)
    {
        var pki = new TestPki();
        var logs = new LogCapture();
        var edge = await StartEdgeAsync(pki, logs, "test-edge", "test-region", configureEdge);
        return new TunnelHarness(pki, edge, logs);
    }

    /// <summary>Another edge with the same CA, stopped with the harness.</summary>
    public async Task<EdgeServer> StartExtraEdgeAsync(string name, string region, Action<EdgeOptions>? configureEdge = null)
    {
        var edge = await StartEdgeAsync(Pki, new LogCapture(), name, region, configureEdge);
        _extraEdges.Add(edge);
        return edge;
    }

    private static async Task<EdgeServer> StartEdgeAsync(TestPki pki, LogCapture logs, string name, string region, Action<EdgeOptions>? configureEdge)
    {
        var options = new EdgeOptions
        {
            Name = name,
            Region = region,
            TunnelAddress = "127.0.0.1",
            TunnelPort = 0,
            VisitorAddress = "127.0.0.1",
            VisitorHttpPort = 0,
            AdminPort = 0,
            CaCertificatePath = pki.CaPath,
            ServerCertificatePath = pki.EdgeCertificatePath,
            ServerKeyPath = pki.EdgeKeyPath,
        };
        configureEdge?.Invoke(options);
        var edge = EdgeServer.Create(options, logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(logs);
        });
        await edge.StartAsync();
        return edge;
    }

    /// <summary>Starts a HelloOrigin app dialing this edge with a certificate for <paramref name="certificateDomains"/>.</summary>
    public async Task<Origin> StartOriginAsync(
        string[]? hostnames = null,
        string[]? certificateDomains = null,
        Action<TunnelOptions>? configureTunnel = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        bool waitForConnections = true,
        Action<WebApplication>? configureApp = null)
    {
        hostnames ??= [Hostname];
        var (certificatePath, keyPath) = Pki.IssueOrigin(certificateDomains ?? hostnames);
        var logs = new LogCapture();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        var haConnections = 4;
        builder.WebHost.UseTunnelTransport(tunnel =>
        {
            tunnel.Edges = [$"127.0.0.1:{Edge.TunnelEndPoint.Port}"];
            tunnel.Hostnames = [.. hostnames];
            tunnel.CertificatePath = certificatePath;
            tunnel.CertificateKeyPath = keyPath;
            tunnel.EdgeCaPath = Pki.CaPath;
            tunnel.EdgeServerName = "localhost";
            configureTunnel?.Invoke(tunnel);
            haConnections = tunnel.HaConnections;
        });
        configureBuilder?.Invoke(builder);
        var app = builder.Build();
        app.MapHelloEndpoints();
        configureApp?.Invoke(app);
        await app.StartAsync();
        _origins.Add(app);
        var origin = new Origin(app, logs);
        if (waitForConnections)
        {
            var expected = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<TunnelOptions>>().Value.HaConnections;
            await Wait.UntilAsync(() => Edge.Routes.Connections().Count(c => c.IsUsable) >= expected, TimeSpan.FromSeconds(20), $"{expected} tunnel connections are registered");
        }

        return origin;
    }

    /// <summary>
    /// Starts a HelloOrigin app whose tunnel options come only from <paramref name="configureTunnel"/> and
    /// the configuration <paramref name="configureBuilder"/> adds (applied before <c>UseTunnelTransport</c>):
    /// nothing of the harness's own, so a credential file alone can be tested.
    /// </summary>
    public async Task<Origin> StartBareOriginAsync(
        Action<TunnelOptions>? configureTunnel = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        int waitForConnections = 0,
        Action<WebApplication>? configureApp = null,
        string environmentName = "Production")
    {
        var logs = new LogCapture();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = environmentName });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        configureBuilder?.Invoke(builder);
        builder.WebHost.UseTunnelTransport(configureTunnel);
        var app = builder.Build();
        app.MapHelloEndpoints();
        configureApp?.Invoke(app);
        await app.StartAsync();
        _origins.Add(app);
        if (waitForConnections > 0)
        {
            await Wait.UntilAsync(() => Edge.Routes.Connections().Count(c => c.IsUsable) >= waitForConnections, TimeSpan.FromSeconds(20), $"{waitForConnections} tunnel connections are registered");
        }

        return new Origin(app, logs);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var origin in _origins)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await origin.StopAsync(stop.Token);
            await origin.DisposeAsync();
        }

        foreach (var edge in _extraEdges.Append(Edge))
        {
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            {
                await edge.StopAsync(stop.Token);
            }

            await edge.DisposeAsync();
        }
        Pki.Dispose();
    }

    public sealed record Origin(WebApplication App, LogCapture Logs);
}
