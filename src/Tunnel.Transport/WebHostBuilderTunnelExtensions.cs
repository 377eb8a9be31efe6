using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Tunnel.Transport;
using Tunnel.Transport.Connections;
using Tunnel.Transport.Internal;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>
/// Adds the tunnel transport to a web host.
/// </summary>
public static class WebHostBuilderTunnelExtensions
{
    /// <summary>
    /// Serves the app through outbound TLS tunnels to tunnel edges. Options are bound from the
    /// <c>Tunnel</c> configuration section, then <paramref name="configure"/> runs.
    /// </summary>
    /// <remarks>
    /// Kestrel serves HTTP/2 on the tunnel endpoint. The app's URL listeners (<c>--urls</c>) keep
    /// working beside it unless <see cref="TunnelOptions.KeepUrlListeners"/> is off.
    /// </remarks>
    public static IWebHostBuilder UseTunnelTransport(this IWebHostBuilder builder, Action<TunnelOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices((context, services) =>
        {
            var options = services.AddOptions<TunnelOptions>().Bind(context.Configuration.GetSection(TunnelOptions.SectionName));
            if (configure is not null)
            {
                options.Configure(configure);
            }

            services.TryAddSingleton(TimeProvider.System);
            services.AddMetrics();
            services.TryAddSingleton<TunnelStatus>();
            services.TryAddSingleton<ITunnelStatus>(sp => sp.GetRequiredService<TunnelStatus>());
            services.TryAddSingleton<TunnelMetrics>();
            services.TryAddSingleton<TunnelReadiness>();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, TunnelReadinessMonitor>());
            services.TryAddSingleton<TunnelEvents>();
            services.TryAddSingleton<ConnectionRoutes>();
            services.TryAddSingleton<VisitorConnectionAcceptor>();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IConnectionListenerFactory, TunnelTransportFactory>(sp => new TunnelTransportFactory(
                sp.GetRequiredService<IOptionsMonitor<TunnelOptions>>(),
                sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>(),
                sp.GetRequiredService<TunnelEvents>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<Microsoft.Extensions.Hosting.IHostEnvironment>()?.EnvironmentName ?? context.HostingEnvironment.EnvironmentName,
                sp.GetRequiredService<ConnectionRoutes>())));
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<KestrelServerOptions>, TunnelKestrelOptionsSetup>());
            services.TryAddSingleton<UrlListeners>();
            services.TryAddEnumerable(ServiceDescriptor.Transient<IStartupFilter, TunnelStartupFilter>());
        });
    }
}
