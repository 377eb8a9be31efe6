using System.Net;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Cluster;
using Tunnel.Edge.Forwarding;
using Tunnel.Protocol;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>The identity assertion the forwarder adds to the request for the app (<see cref="TunnelHeaderNames.Identity"/>).</summary>
internal sealed record SignInIdentityFeature(string Assertion);

/// <summary>
/// Runs after the access rules on a route with an <c>Access</c> section: answers the edge's own paths
/// (the provider's callback, sign-out), lets a valid service token or a session the policy allows
/// through with a signed assertion for the app, sends a visitor without a session to sign in, and
/// answers 403 to the rest. Nothing of a refused request reaches the origin.
/// </summary>
internal sealed class SignInMiddleware(RequestDelegate next, SignInRoutes routes, EdgeAssertionSigner signer, SignInMetrics metrics, IAuthenticationHandlerProvider handlers, ILoggerFactory loggers)
{
    private static readonly PathString ReservedPrefixPath = SignInServices.ReservedPrefix.TrimEnd('/');

    private readonly ILogger _logger = loggers.CreateLogger("Tunnel.Edge.Access.SignIn");

    public async Task InvokeAsync(HttpContext context)
    {
        var feature = EdgeRequestFeature.For(context);
        if (routes.Find(feature.Policy.Name) is not { } route)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        // Another edge of the cluster signed the visitor in and made the assertion (edges of a cluster share their access keys).
        if (context.Features.Get<PeerRequestFeature>() is { } peer)
        {
            if (await PeerAssertions.AcceptAsync(context, peer.FromEdge, route, signer, metrics, _logger).ConfigureAwait(false))
            {
                await next(context).ConfigureAwait(false);
            }

            return;
        }

        var host = context.Request.Host.Host.TrimEnd('.').ToLowerInvariant();
        if (context.Request.Path.StartsWithSegments(ReservedPrefixPath, StringComparison.Ordinal))
        {
            await EdgePathAsync(context, route, host, feature.RequestId).ConfigureAwait(false);
            return;
        }

        var visitor = context.Request.Headers.ContainsKey(SignInServices.ClientIdHeader)
            ? await ServiceTokenAsync(context, route, host, feature.RequestId).ConfigureAwait(false)
            : await SessionAsync(context, route, host, feature.RequestId).ConfigureAwait(false);
        if (visitor is null)
        {
            return;
        }

        context.Features.Set(new SignInIdentityFeature(signer.Sign(visitor, host, route.Options.SendProfileClaims)));
        await next(context).ConfigureAwait(false);
    }

    /// <summary>The visitor of a valid, unrevoked service token, or <c>null</c> after a 403.</summary>
    private async Task<System.Security.Claims.ClaimsPrincipal?> ServiceTokenAsync(HttpContext context, SignInRoute route, string host, string requestId)
    {
        var clientId = context.Request.Headers[SignInServices.ClientIdHeader].ToString();
        var secret = context.Request.Headers[SignInServices.ClientSecretHeader].ToString();
        var hash = route.TokenHash(clientId);
        var (reason, problem) = hash is null ? ("token_invalid", "unknown client id")
            : !SignInRoute.SecretMatches(hash, secret) ? ("token_invalid", $"wrong secret for client id {clientId}")
            : routes.Revocations.IsRevoked(clientId, hash) ? ("token_revoked", $"client id {clientId} is revoked")
            : ("service_token", null);
        metrics.Decided(route.Name, reason);
        if (problem is null)
        {
            return SignInRoute.ServicePrincipal(clientId);
        }

        SignInLog.TokenRefused(_logger, requestId, host, problem);
        await ErrorPages.WriteAsync(context, StatusCodes.Status403Forbidden, ErrorPages.TitleFor(StatusCodes.Status403Forbidden),
            $"The service token is not valid for {host}.", host, requestId).ConfigureAwait(false);
        return null;
    }

    /// <summary>The signed-in visitor the policy allows, or <c>null</c> after sending the visitor to sign in or a 403.</summary>
    private async Task<System.Security.Claims.ClaimsPrincipal?> SessionAsync(HttpContext context, SignInRoute route, string host, string requestId)
    {
        var session = await context.AuthenticateAsync(route.CookieScheme).ConfigureAwait(false);
        if (!session.Succeeded || session.Principal is null)
        {
            if (!route.HasSignIn)
            {
                metrics.Decided(route.Name, "token_invalid");
                SignInLog.TokenRefused(_logger, requestId, host, "no service token sent");
                await ErrorPages.WriteAsync(context, StatusCodes.Status403Forbidden, ErrorPages.TitleFor(StatusCodes.Status403Forbidden),
                    $"{host} takes service tokens only.", host, requestId).ConfigureAwait(false);
                return null;
            }

            metrics.Decided(route.Name, "sign_in_required");
            SignInLog.Challenged(_logger, requestId, host);
            var back = context.Request.PathBase.Add(context.Request.Path).ToUriComponent() + context.Request.QueryString.ToUriComponent();
            await context.ChallengeAsync(route.OidcScheme, new AuthenticationProperties { RedirectUri = back }).ConfigureAwait(false);
            return null;
        }

        if (!route.Allows(session.Principal))
        {
            metrics.Decided(route.Name, "not_allowed");
            SignInLog.NotAllowed(_logger, requestId, host, session.Principal.FindFirst(SignInClaims.Subject)?.Value ?? "(no sub)");
            await ErrorPages.WriteAsync(context, StatusCodes.Status403Forbidden, ErrorPages.TitleFor(StatusCodes.Status403Forbidden),
                $"You are signed in, but your account may not visit {host}. To use another account, sign out at {SignInServices.SignOutPath}.", host, requestId).ConfigureAwait(false);
            return null;
        }

        metrics.Decided(route.Name, "session");
        return session.Principal;
    }

    /// <summary>The edge's own paths on a route with sign-in: the provider's callback and sign-out; any other is 404.</summary>
    private async Task EdgePathAsync(HttpContext context, SignInRoute route, string host, string requestId)
    {
        var path = context.Request.Path.Value;
        if (path == SignInServices.SignOutPath)
        {
            await context.SignOutAsync(route.CookieScheme).ConfigureAwait(false);
            SignInLog.SignedOut(_logger, host);
            context.Response.ContentType = "text/html; charset=utf-8";
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.WriteAsync(
                $"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed out</title></head><body><h1>Signed out</h1><p>You are signed out of <code>{WebUtility.HtmlEncode(host)}</code>. <a href=\"/\">Sign in again</a>.</p></body></html>\n",
                context.RequestAborted).ConfigureAwait(false);
            return;
        }

        if (route.HasSignIn && await handlers.GetHandlerAsync(context, route.OidcScheme).ConfigureAwait(false) is IAuthenticationRequestHandler oidc
            && await oidc.HandleRequestAsync().ConfigureAwait(false))
        {
            return;
        }

        await ErrorPages.WriteAsync(context, StatusCodes.Status404NotFound, "Not Found",
            $"{path} is the edge's own path on {host}, and there is nothing there.", host, requestId).ConfigureAwait(false);
    }

    /// <summary>The provider sent the visitor back with an error, or the code could not be redeemed: a 403 page, and the reason in the log.</summary>
    internal static Task CallbackFailedAsync(HttpContext context, SignInRoute route, string reason)
    {
        var host = context.Request.Host.Host.TrimEnd('.').ToLowerInvariant();
        var services = context.RequestServices;
        SignInLog.CallbackFailed(((ILoggerFactory)services.GetService(typeof(ILoggerFactory))!).CreateLogger("Tunnel.Edge.Access.SignIn"), host, reason);
        ((SignInMetrics)services.GetService(typeof(SignInMetrics))!).Decided(route.Name, "callback_failed");
        return ErrorPages.WriteAsync(context, StatusCodes.Status403Forbidden, ErrorPages.TitleFor(StatusCodes.Status403Forbidden),
            $"Signing in to {host} did not complete. Go back to the page you wanted and try again.", host, EdgeRequestFeature.For(context).RequestId);
    }
}
