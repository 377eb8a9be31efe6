using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Protocol;
using Tunnel.Transport;
using Tunnel.Transport.Connections;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Declares tunnel endpoints that take visitors' whole connections.</summary>
public static class KestrelTunnelExtensions
{
    /// <summary>
    /// Adds an endpoint that Kestrel serves with the visitor connections an edge relays whole for
    /// <paramref name="hostname"/>, configured like any other endpoint: <c>UseHttps</c> for
    /// <see cref="TunnelMode.TlsPassthrough"/>, <c>Protocols</c>, <c>UseConnectionHandler</c> for
    /// <see cref="TunnelMode.Tcp"/>. The hostname is registered with the edge beside the tunnel's
    /// request hostnames and must be covered by the credential in the same way.
    /// </summary>
    /// <param name="options">Kestrel's options; <c>UseTunnelTransport</c> must have been called on the host.</param>
    /// <param name="hostname">An exact hostname or a <c>*.</c> wildcard.</param>
    /// <param name="mode">How the edge routes the connections.</param>
    /// <param name="configure">
    /// Configures the endpoint; by default HTTP/1.1 and HTTP/2 (ALPN with <c>UseHttps</c>, h2c by prior
    /// knowledge for <see cref="TunnelMode.HttpPassthrough"/>, where the protocols are set per connection
    /// from the visitor's first bytes).
    /// </param>
    /// <exception cref="InvalidOperationException">The tunnel transport was not added to the host.</exception>
    /// <exception cref="ArgumentException">The hostname is not a DNS name, or was already declared for the mode.</exception>
    public static KestrelServerOptions ListenTunnel(this KestrelServerOptions options, string hostname, TunnelMode mode, Action<ListenOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!HostnameRules.TryNormalize(hostname, out var name, out var error))
        {
            throw new ArgumentException($"ListenTunnel: {error}.", nameof(hostname));
        }

        var routes = options.ApplicationServices?.GetService<ConnectionRoutes>()
            ?? throw new InvalidOperationException("ListenTunnel needs the tunnel transport: call UseTunnelTransport() on the web host first.");
        var endPoint = routes.Add(name, mode);
        if (endPoint.H2c is { } h2c)
        {
            // Cleartext: Kestrel tells HTTP/1.1 from HTTP/2 by endpoint, not by the first bytes; the edge
            // says which the visitor began with, and the connection goes to the endpoint for it.
            options.Listen(endPoint, listen =>
            {
                configure?.Invoke(listen);
                listen.Protocols = HttpProtocols.Http1;
            });
            options.Listen(h2c, listen =>
            {
                configure?.Invoke(listen);
                listen.Protocols = HttpProtocols.Http2;
            });
            return options;
        }

        options.Listen(endPoint, listen =>
        {
            if (mode != TunnelMode.Tcp)
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
            }

            configure?.Invoke(listen);
        });
        return options;
    }
}
