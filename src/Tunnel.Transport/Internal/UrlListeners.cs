using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Keeps the app's URL listeners beside the tunnel endpoint. Kestrel binds either the URLs the host
/// gave it (<c>--urls</c>, <c>ASPNETCORE_URLS</c>, <c>ASPNETCORE_HTTP_PORTS</c>, <c>app.Urls</c>) or the
/// endpoints declared in code, never both, and warns that it is overriding the URLs. The tunnel's
/// endpoint is declared in code, so the URLs are moved to endpoints in code just before Kestrel binds:
/// the host has placed them in the server's addresses by then, and Kestrel reads its endpoints at bind.
/// </summary>
internal sealed class UrlListeners(
    IOptions<KestrelServerOptions> kestrelOptions,
    IOptionsMonitor<TunnelOptions> tunnelOptions,
    IConfiguration configuration,
    ILoggerFactory loggerFactory)
{
    /// <summary>Moves the server's addresses to Kestrel endpoints, unless the app chose otherwise.</summary>
    public void MoveToEndpoints(IApplicationBuilder app)
    {
        var addresses = app.ServerFeatures.Get<IServerAddressesFeature>();
        if (!tunnelOptions.CurrentValue.KeepUrlListeners
            || addresses is null || addresses.Addresses.IsReadOnly || addresses.Addresses.Count == 0 || addresses.PreferHostingUrls
            || configuration.GetSection("Kestrel:Endpoints").GetChildren().Any())
        {
            return;
        }

        var kept = new List<string>();
        foreach (var url in addresses.Addresses)
        {
            if (Listen(kestrelOptions.Value, url.Trim()))
            {
                kept.Add(url.Trim());
            }
        }

        // Kestrel adds the addresses it binds; left here, they would also make it warn and drop the endpoints.
        addresses.Addresses.Clear();
        if (kept.Count > 0)
        {
            TunnelLog.KeepingUrls(loggerFactory.CreateLogger("Tunnel.Transport"), string.Join(";", kept));
        }
    }

    private static bool Listen(KestrelServerOptions options, string url)
    {
        BindingAddress address;
        try
        {
            address = BindingAddress.Parse(url);
        }
        catch (FormatException)
        {
            // Not a URL Kestrel could bind either; it is dropped as Kestrel would have refused it.
            return false;
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

        return true;
    }
}
