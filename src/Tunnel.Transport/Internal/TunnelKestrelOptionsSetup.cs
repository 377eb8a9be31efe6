using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Adds the tunnel endpoint to Kestrel (HTTP/2 only, visitor schemes allowed), sets HTTP/2 keepalive
/// PINGs when the app has not, and keeps the app's URL listeners that Kestrel would otherwise drop.
/// </summary>
internal sealed class TunnelKestrelOptionsSetup(
    IOptionsMonitor<TunnelOptions> tunnelOptions,
    IConfiguration configuration,
    ILoggerFactory loggerFactory) : IPostConfigureOptions<KestrelServerOptions>
{
    public void PostConfigure(string? name, KestrelServerOptions options)
    {
        var tunnel = tunnelOptions.CurrentValue;
        // The endpoint's name only shows in Kestrel's logs; with a credential file the hostnames come from it.
        var hostnames = tunnel.Hostnames.Count > 0 || string.IsNullOrEmpty(tunnel.CredentialPath) ? string.Join(",", tunnel.Hostnames) : Path.GetFileName(tunnel.CredentialPath);
        options.Listen(new TunnelEndPoint($"tunnel://{hostnames}"), listen => listen.Protocols = HttpProtocols.Http2);

        // The edge cannot speak TLS to Kestrel inside the tunnel, so requests carry the visitor's scheme.
        options.AllowAlternateSchemes = true;

        var http2 = options.Limits.Http2;
        if (http2.KeepAlivePingDelay == TimeSpan.MaxValue || http2.KeepAlivePingDelay == Timeout.InfiniteTimeSpan)
        {
            http2.KeepAlivePingDelay = tunnel.KeepAlivePingDelay;
            http2.KeepAlivePingTimeout = tunnel.KeepAlivePingTimeout;
        }

        if (tunnel.KeepUrlListeners)
        {
            KeepUrlListeners(options);
        }
    }

    private void KeepUrlListeners(KestrelServerOptions options)
    {
        var urls = configuration[WebHostDefaultsUrlsKey];
        if (string.IsNullOrWhiteSpace(urls) || configuration.GetSection("Kestrel:Endpoints").GetChildren().Any())
        {
            return;
        }

        var kept = new List<string>();
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                // Kestrel reports malformed URLs itself.
                continue;
            }

            var https = address.Scheme.Equals("https", StringComparison.OrdinalIgnoreCase);
            void Configure(ListenOptions listen)
            {
                if (https)
                {
                    listen.UseHttps();
                }
            }

            if (address.IsUnixPipe)
            {
                options.ListenUnixSocket(address.UnixPipePath, Configure);
            }
            else if (address.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            {
                options.ListenLocalhost(address.Port, Configure);
            }
            else if (IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip))
            {
                options.Listen(ip, address.Port, Configure);
            }
            else
            {
                // "*", "+" or a host name: Kestrel binds every interface for these.
                options.ListenAnyIP(address.Port, Configure);
            }

            kept.Add(url);
        }

        if (kept.Count > 0)
        {
            TunnelLog.KeepingUrls(loggerFactory.CreateLogger("Tunnel.Transport"), string.Join(";", kept));
        }
    }

    private const string WebHostDefaultsUrlsKey = "urls";
}
