using System.Net;
using System.Net.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access;
using Tunnel.Edge.Admin;
using Tunnel.Edge.Forwarding;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.Edge.Tunnels;
using Tunnel.Edge.Visitors;
using Tunnel.Edge.Visitors.Passthrough;

namespace Tunnel.Edge.Hosting;

/// <summary>
/// A running edge: the tunnel listener and the visitor listener in one host. The <c>tunnel-edge serve</c>
/// command runs one; tests and the demo start one in-process.
/// </summary>
public sealed class EdgeServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Func<ListenOptions?> _adminListen;
    private readonly Func<ListenOptions?> _peerListen;

    private EdgeServer(WebApplication app, EdgeOptions options, Func<ListenOptions?> adminListen, Func<ListenOptions?> peerListen)
    {
        _app = app;
        Options = options;
        _adminListen = adminListen;
        _peerListen = peerListen;
    }

    /// <summary>The options the edge runs with.</summary>
    public EdgeOptions Options { get; }

    /// <summary>The route table: hostname to live tunnel connections.</summary>
    internal RouteTable Routes => _app.Services.GetRequiredService<RouteTable>();

    /// <summary>How many tunnel connections from origins are registered now.</summary>
    public int TunnelConnectionCount => Routes.ConnectionCount;

    /// <summary>Where origins dial (the real port when 0 was configured).</summary>
    public IPEndPoint TunnelEndPoint => _app.Services.GetRequiredService<TunnelListener>().EndPoint;

    /// <summary>Where visitors connect; known once started.</summary>
    public IPEndPoint VisitorEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>Where visitors connect over HTTPS, known once started; <c>null</c> when the HTTPS port is off.</summary>
    public IPEndPoint? VisitorHttpsEndPoint { get; private set; }

    /// <summary>Where the admin listener (status page, <c>/metrics</c>) is, known once started; <c>null</c> when it is off.</summary>
    public IPEndPoint? AdminEndPoint { get; private set; }

    /// <summary>Where the other edges of a cluster connect, known once started; <c>null</c> without a cluster.</summary>
    public IPEndPoint? PeerEndPoint { get; private set; }

    /// <summary>The address written to etcd for the other edges to dial; <c>null</c> without a cluster.</summary>
    public string? PeerAdvertisedAddress { get; private set; }

    /// <summary>The host's services.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Builds an edge: checks its options (one error lists every problem), loads its credentials (a missing or
    /// corrupt file fails here, with its name) and binds the tunnel port.
    /// </summary>
    public static EdgeServer Create(EdgeOptions options, Action<ILoggingBuilder>? configureLogging = null, string[]? args = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        EdgeOptionsValidator.ThrowIfInvalid(options);
        var policies = HostPolicies.Create(options);
        var credentials = EdgeCredentials.Load(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args ?? [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";

            // Request log lines then carry the request's TraceId (and the edge's request id).
            o.IncludeScopes = true;
        });
        configureLogging?.Invoke(builder.Logging);

        // Last, so it wraps every provider, the caller's too.
        PeerRepeatedLogThrottle.WrapProviders(builder.Services);

        var handoff = new H2cHandoff();
        AddServices(builder.Services, options, credentials, policies, handoff);
        ListenOptions? adminListen = null;
        ListenOptions? peerListen = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            ListenForVisitors(kestrel, options, handoff);
            PassthroughServices.ListenTcpRoutes(kestrel, options, kestrel.ApplicationServices.GetRequiredService<VisitorConnectionLimits>());
            adminListen = EdgeAdmin.Listen(kestrel, options);
            peerListen = Cluster.ClusterServices.Listen(kestrel, options);
        });

        var app = builder.Build();

        // Load the visitor certificates now, so a missing or corrupt file stops Create with its name.
        _ = app.Services.GetRequiredService<VisitorCertificates>();
        UseVisitorPipeline(app, options);
        _ = app.Services.GetRequiredService<TunnelListener>();
        return new EdgeServer(app, options, () => adminListen, () => peerListen);
    }

    private static void AddServices(IServiceCollection services, EdgeOptions options, EdgeCredentials credentials, HostPolicies policies, H2cHandoff handoff)
    {
        services.AddSingleton(options);
        Telemetry.EdgeOtlpExport.AddIfConfigured(services, options);
        services.AddSingleton(_ => credentials); // A factory, so the container disposes it (its file watch) with the host.
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(policies);
        services.AddSingleton<RouteTable>();
        services.AddSingleton<RequestForwarder>();
        Cluster.ClusterServices.Add(services, options);
        services.AddSingleton<RegistrationPolicy>();
        PassthroughServices.Add(services, options);
        Dns.DnsServices.Add(services, options);
        Certificates.Acme.AcmeServices.Add(services, options);
        services.AddSingleton<TunnelListener>();
        services.AddHostedService(sp => sp.GetRequiredService<TunnelListener>());
        services.AddSingleton<IConnectionListenerFactory>(handoff);
        services.AddSingleton(sp => VisitorCertificates.Load(options, sp.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Visitors"), sp.GetRequiredService<Telemetry.EdgeMetrics>()));
        services.AddSingleton(new HttpsRedirect(options));
        services.AddSingleton<VisitorTlsBuffers>();
        services.AddSingleton(sp => new VisitorConnectionLimits(options.Limits, sp.GetRequiredService<EdgeMetrics>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Visitors"), sp.GetRequiredService<TimeProvider>()));
        EdgeAdmin.AddServices(services);
        Access.SignIn.SignInServices.Add(services, options);
    }

    /// <summary>The visitor ports: plain HTTP (HTTP/1.1, h2c handed off) and, with a certificate, HTTPS.</summary>
    private static void ListenForVisitors(KestrelServerOptions kestrel, EdgeOptions options, H2cHandoff handoff)
    {
        kestrel.AddServerHeader = false;

        // The origin enforces its own body limit; the edge streams and never buffers bodies whole.
        kestrel.Limits.MaxRequestBodySize = null;
        VisitorLimits.Apply(kestrel.Limits, options.Limits);
        var connectionLimits = kestrel.ApplicationServices.GetRequiredService<VisitorConnectionLimits>();
        kestrel.Listen(IPAddress.Parse(options.VisitorAddress), options.VisitorHttpPort, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.Use(connectionLimits.Middleware);
            listen.Use(kestrel.ApplicationServices.GetRequiredService<PassthroughRouter>().Http);
            listen.Use(next => handoff.Sniff(next, connectionLimits));
        });
        kestrel.Listen(new H2cHandoffEndPoint(), listen => listen.Protocols = HttpProtocols.Http2);

        var certificates = kestrel.ApplicationServices.GetRequiredService<VisitorCertificates>();
        if (options.VisitorHttpsPort < 0 || (certificates.IsEmpty && !options.Connections.TlsPassthrough && !Certificates.Acme.AcmeServices.NeedsHttpsPort(options)))
        {
            return;
        }

        kestrel.Listen(IPAddress.Parse(options.VisitorAddress), options.VisitorHttpsPort, listen =>
        {
            listen.Protocols = HttpProtocols.Http1AndHttp2;

            // Counted before the handshake: a visitor holds the socket from its first byte.
            listen.Use(connectionLimits.Middleware);
            listen.Use(kestrel.ApplicationServices.GetRequiredService<PassthroughRouter>().Tls);
            Certificates.Acme.AcmeServices.UseTlsAlpnChallenge(listen);
            listen.UseHttps(new TlsHandshakeCallbackOptions
            {
                HandshakeTimeout = options.Limits.TlsHandshakeTimeout,
                OnConnection = async context =>
                {
                    await Certificates.Acme.AcmeServices.BeforeHandshakeAsync(kestrel.ApplicationServices, context.ClientHelloInfo.ServerName).ConfigureAwait(false);
                    return new SslServerAuthenticationOptions
                    {
                        ServerCertificateContext = certificates.Select(context.ClientHelloInfo.ServerName),
                        ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
                    };
                },
            });
            if (options.ReleaseIdleTlsBuffers)
            {
                listen.Use(kestrel.ApplicationServices.GetRequiredService<VisitorTlsBuffers>().Middleware);
            }

            listen.Use(connectionLimits.AwaitFirstBytes);
        });
    }

    /// <summary>The request pipeline: admin and peer ports first, then metrics, tracing, access rules, the HTTPS redirect, the forwarder.</summary>
    private static void UseVisitorPipeline(WebApplication app, EdgeOptions options)
    {
        var forwarder = app.Services.GetRequiredService<RequestForwarder>();
        EdgeAdmin.Map(app, options.AdminPort >= 0);
        Cluster.ClusterServices.Use(app, options);
        Certificates.Acme.AcmeServices.UseHttpChallenge(app);
        app.UseMiddleware<EdgeRequestMetrics>();
        app.UseMiddleware<EdgeTracing>();
        app.UseMiddleware<EdgeAccessMiddleware>();
        var redirect = app.Services.GetRequiredService<HttpsRedirect>();
        if (redirect.IsEnabled)
        {
            app.Use(redirect.Middleware);
        }

        Access.SignIn.SignInServices.Use(app);

        app.Run(forwarder.InvokeAsync);
    }

    /// <summary>Starts both listeners.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        AdminEndPoint = _adminListen()?.IPEndPoint;
        if (AdminEndPoint is { } admin)
        {
            EdgeAdmin.LogListening(_app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Admin"), admin);
        }

        PeerEndPoint = _peerListen()?.IPEndPoint;
        if (PeerEndPoint is { } peer)
        {
            PeerAdvertisedAddress = Cluster.ClusterServices.Announce(_app.Services, Options, peer);
        }

        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var tcpRoutes = _app.Services.GetRequiredService<TcpRouteListeners>().EndPoints;
        foreach (var address in addresses)
        {
            if (Uri.TryCreate(address, UriKind.Absolute, out var uri) && IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && !new IPEndPoint(ip, uri.Port).Equals(AdminEndPoint) && !new IPEndPoint(ip, uri.Port).Equals(PeerEndPoint) && !tcpRoutes.Contains(new IPEndPoint(ip, uri.Port)))
            {
                if (uri.Scheme == Uri.UriSchemeHttps)
                {
                    VisitorHttpsEndPoint ??= new IPEndPoint(ip, uri.Port);
                }
                else if (VisitorEndPoint.Port == 0)
                {
                    VisitorEndPoint = new IPEndPoint(ip, uri.Port);
                }
            }
        }

        if (VisitorHttpsEndPoint is { } https)
        {
            _app.Services.GetRequiredService<HttpsRedirect>().ListeningPort = https.Port;
            var certificates = _app.Services.GetRequiredService<VisitorCertificates>();
            certificates.StartWatching();
            EdgeLog.VisitorHttpsListening(_app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Visitors"), https.ToString(), certificates.Count);
        }
    }

    /// <summary>The bound endpoint of the TCP route for <paramref name="hostname"/> (<c>Edge:Connections:TcpRoutes</c>), once started; <c>null</c> when there is none.</summary>
    public IPEndPoint? TcpRouteEndPoint(string hostname) => _app.Services.GetRequiredService<TcpRouteListeners>().EndPointOf(hostname);

    /// <summary>Waits, once started, until the host is told to stop (Ctrl+C, SIGTERM), then stops.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops the edge: no new tunnels, visitors' requests end, tunnels close.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
