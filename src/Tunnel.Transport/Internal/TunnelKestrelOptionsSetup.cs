using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Adds the tunnel endpoint to Kestrel (HTTP/2 only, visitor schemes allowed), sets HTTP/2 keepalive
/// PINGs when the app has not. The app's URL listeners are kept by <see cref="UrlListeners"/>.
/// </summary>
internal sealed class TunnelKestrelOptionsSetup(IOptionsMonitor<TunnelOptions> tunnelOptions) : IPostConfigureOptions<KestrelServerOptions>
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
    }
}
