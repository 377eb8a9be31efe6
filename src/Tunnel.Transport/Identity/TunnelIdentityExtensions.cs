using Microsoft.AspNetCore.Authentication;
using Tunnel.Transport.Identity;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the tunnel identity scheme to an app's authentication.</summary>
public static class TunnelIdentityExtensions
{
    /// <summary>
    /// Adds the scheme that makes the visitor the edge signed in (a route with <c>Edge:Hosts:{host}:Access</c>)
    /// the request's <c>HttpContext.User</c>: it validates the edge's assertion (<c>X-Tunnel-Identity</c>)
    /// on tunnel connections only, against the key the edge of that very connection sent at registration,
    /// for the request's host, within its lifetime. On any other connection, and on a request without an
    /// assertion, it authenticates nobody. When it is the only scheme it is the default one, so
    /// <c>[Authorize]</c> and <c>User.Identity.Name</c> work as they are.
    /// </summary>
    public static AuthenticationBuilder AddTunnelIdentity(this AuthenticationBuilder builder) =>
        builder.AddTunnelIdentity(TunnelIdentityDefaults.AuthenticationScheme, null);

    /// <summary>Adds the tunnel identity scheme (see <see cref="AddTunnelIdentity(AuthenticationBuilder)"/>) with its options set by <paramref name="configure"/>.</summary>
    public static AuthenticationBuilder AddTunnelIdentity(this AuthenticationBuilder builder, Action<TunnelIdentityOptions> configure) =>
        builder.AddTunnelIdentity(TunnelIdentityDefaults.AuthenticationScheme, configure);

    /// <summary>Adds the tunnel identity scheme (see <see cref="AddTunnelIdentity(AuthenticationBuilder)"/>) under the name <paramref name="authenticationScheme"/>.</summary>
    public static AuthenticationBuilder AddTunnelIdentity(this AuthenticationBuilder builder, string authenticationScheme, Action<TunnelIdentityOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddScheme<TunnelIdentityOptions, TunnelIdentityHandler>(authenticationScheme, configure);
    }
}
