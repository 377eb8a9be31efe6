using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access;
using Tunnel.Edge.Forwarding;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Tunnels;
using Tunnel.Edge.Visitors;

namespace Tunnel.Edge.Hosting;

/// <summary>
/// A running edge: the tunnel listener and the visitor listener in one host. The <c>tunnel-edge serve</c>
/// command runs one; tests and the demo start one in-process.
/// </summary>
public sealed class EdgeServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private EdgeServer(WebApplication app, EdgeOptions options)
    {
        _app = app;
        Options = options;
    }

    /// <summary>The options the edge runs with.</summary>
    public EdgeOptions Options { get; }

    /// <summary>The route table: hostname to live tunnel connections.</summary>
    public RouteTable Routes => _app.Services.GetRequiredService<RouteTable>();

    /// <summary>Where origins dial (the real port when 0 was configured).</summary>
    public IPEndPoint TunnelEndPoint => _app.Services.GetRequiredService<TunnelListener>().EndPoint;

    /// <summary>Where visitors connect; known once started.</summary>
    public IPEndPoint VisitorEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>The host's services.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Builds an edge: loads its credentials (a missing or corrupt file fails here, with its name) and
    /// binds the tunnel port.
    /// </summary>
    public static EdgeServer Create(EdgeOptions options, Action<ILoggingBuilder>? configureLogging = null, string[]? args = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var policies = HostPolicies.Create(options);
        var credentials = EdgeCredentials.Load(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args ?? [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        configureLogging?.Invoke(builder.Logging);

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(credentials);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(policies);
        services.AddSingleton<RouteTable>();
        services.AddSingleton<RequestForwarder>();
        services.AddSingleton<TunnelListener>();
        services.AddHostedService(sp => sp.GetRequiredService<TunnelListener>());
        var handoff = new H2cHandoff();
        services.AddSingleton<IConnectionListenerFactory>(handoff);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;

            // The origin enforces its own body limit; the edge streams and never buffers bodies whole.
            kestrel.Limits.MaxRequestBodySize = null;
            VisitorLimits.Apply(kestrel.Limits, options.Limits);
            kestrel.Listen(IPAddress.Parse(options.VisitorAddress), options.VisitorHttpPort, listen =>
            {
                listen.Protocols = HttpProtocols.Http1;
                listen.Use(handoff.Sniff);
            });
            kestrel.Listen(new H2cHandoffEndPoint(), listen => listen.Protocols = HttpProtocols.Http2);
        });

        var app = builder.Build();
        var forwarder = app.Services.GetRequiredService<RequestForwarder>();
        app.UseMiddleware<EdgeAccessMiddleware>();
        app.Run(forwarder.InvokeAsync);
        _ = app.Services.GetRequiredService<TunnelListener>();
        return new EdgeServer(app, options);
    }

    /// <summary>Starts both listeners.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        foreach (var address in addresses)
        {
            if (Uri.TryCreate(address, UriKind.Absolute, out var uri) && IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip))
            {
                VisitorEndPoint = new IPEndPoint(ip, uri.Port);
                break;
            }
        }
    }

    /// <summary>Waits, once started, until the host is told to stop (Ctrl+C, SIGTERM), then stops.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops the edge: no new tunnels, visitors' requests end, tunnels close.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
