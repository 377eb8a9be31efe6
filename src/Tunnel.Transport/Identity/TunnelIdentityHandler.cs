using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tunnel.Protocol;
using Tunnel.Transport.Internal;

namespace Tunnel.Transport.Identity;

/// <summary>
/// Authenticates the visitor the edge signed in, from its assertion, on tunnel connections only: a
/// tunnel connection is one only the edge could open (it dialled the edge, authenticated it and
/// registered), so an assertion seen on one came from that edge, and one captured and replayed to any
/// other listener of the app is never read.
/// </summary>
internal sealed partial class TunnelIdentityHandler(IOptionsMonitor<TunnelIdentityOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<TunnelIdentityOptions>(options, logger, encoder)
{
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var assertion = Request.Headers[TunnelHeaderNames.Identity];
        if (Context.Features.Get<ITunnelConnectionFeature>() is not TunnelConnectionFeature tunnel)
        {
            if (assertion.Count > 0)
            {
                NotOnTunnel(Logger, Context.Connection.RemoteIpAddress?.ToString() ?? "(unknown)");
            }

            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (assertion.Count == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var now = (Options.TimeProvider ?? TimeProvider.System).GetUtcNow();
        var host = Request.Host.Host.TrimEnd('.');
        string? error;
        List<Claim>? claims = null;
        if (assertion.Count > 1)
        {
            error = "the request has more than one assertion";
        }
        else if (tunnel.IdentityKey is not { } key)
        {
            error = "the edge of this connection sent no identity key at registration";
        }
        else
        {
            claims = TunnelAssertion.Validate(assertion.ToString(), key, host, now, Options.ClockSkew, out error);
        }

        if (claims is null)
        {
            Refused(Logger, tunnel.TunnelConnectionId, host, error!);
            return Task.FromResult(AuthenticateResult.Fail("The edge's identity assertion is not valid: " + error));
        }

        var identity = new ClaimsIdentity(claims, Scheme.Name, Options.NameClaimType, Options.RoleClaimType);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
    }

    [LoggerMessage(90, LogLevel.Warning, "Refused the edge's identity assertion on tunnel connection {TunnelConnectionId} for {Host}: {Reason}.", EventName = "IdentityAssertionRefused")]
    private static partial void Refused(ILogger logger, string tunnelConnectionId, string host, string reason);

    [LoggerMessage(91, LogLevel.Warning, "A request from {Remote} carried an identity assertion on a connection that is not a tunnel connection; it was ignored (only the edge can send one).", EventName = "IdentityAssertionNotOnTunnel")]
    private static partial void NotOnTunnel(ILogger logger, string remote);
}
