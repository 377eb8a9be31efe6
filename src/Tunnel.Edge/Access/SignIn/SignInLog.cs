using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>The sign-in's log lines, event ids 450-479. They name the route, the request id and the visitor's <c>sub</c>, never a secret, cookie or token.</summary>
internal static partial class SignInLog
{
    [LoggerMessage(450, LogLevel.Information, "Sign-in is on for {Route}: provider {Authority}, client {ClientId}, callback {CallbackPath}, {TokenCount} service token(s), sessions of {LifetimeMinutes:0} min.", EventName = "SignInConfigured")]
    public static partial void Configured(ILogger logger, string route, string authority, string clientId, string callbackPath, int tokenCount, double lifetimeMinutes);

    [LoggerMessage(451, LogLevel.Information, "Request {RequestId} to {Host}: no session; sent to sign in.", EventName = "SignInChallenged")]
    public static partial void Challenged(ILogger logger, string requestId, string host);

    [LoggerMessage(452, LogLevel.Warning, "Request {RequestId} to {Host}: signed-in visitor {Subject} is not allowed by the route's policy.", EventName = "SignInNotAllowed")]
    public static partial void NotAllowed(ILogger logger, string requestId, string host, string subject);

    [LoggerMessage(453, LogLevel.Warning, "Request {RequestId} to {Host}: service token refused: {Reason}.", EventName = "ServiceTokenRefused")]
    public static partial void TokenRefused(ILogger logger, string requestId, string host, string reason);

    [LoggerMessage(454, LogLevel.Warning, "Sign-in to {Host} failed at the callback: {Reason}", EventName = "SignInCallbackFailed")]
    public static partial void CallbackFailed(ILogger logger, string host, string reason);

    [LoggerMessage(455, LogLevel.Information, "Visitor {Subject} signed in to {Host}.", EventName = "SignedIn")]
    public static partial void SignedIn(ILogger logger, string host, string subject);

    [LoggerMessage(456, LogLevel.Information, "A visitor signed out of {Host}.", EventName = "SignedOut")]
    public static partial void SignedOut(ILogger logger, string host);
}

/// <summary>
/// <c>tunnel.edge.access.decisions</c>: the sign-in's decisions on visitor requests, by <c>tunnel.route</c>
/// (the <c>Edge:Hosts</c> entry) and <c>reason</c>: <c>session</c>, <c>service_token</c> (let through),
/// <c>sign_in_required</c>, <c>not_allowed</c>, <c>token_invalid</c>, <c>token_revoked</c>, <c>callback_failed</c>.
/// </summary>
internal sealed class SignInMetrics(EdgeMetrics metrics)
{
    private readonly Counter<long> _decisions = metrics.Meter.CreateCounter<long>("tunnel.edge.access.decisions", "{request}",
        "Sign-in decisions on visitor requests to routes with an Access section, by tunnel.route and reason.");

    public void Decided(string route, string reason) =>
        _decisions.Add(1, new KeyValuePair<string, object?>("tunnel.route", route), new KeyValuePair<string, object?>("reason", reason));
}
