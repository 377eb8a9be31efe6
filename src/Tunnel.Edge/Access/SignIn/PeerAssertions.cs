using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Forwarding;
using Tunnel.Protocol;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>
/// The assertion on a request another edge of the cluster forwarded to a route with an <c>Access</c> section
/// here. That edge signed the visitor in, so its assertion goes on to the app, which validates it against
/// the key this edge published at registration. Two mismatches would otherwise pass silently, and are
/// refused with 502 instead (no identity rather than a wrong one; nothing reaches the app):
/// <list type="bullet">
/// <item>no assertion: the other edge has no <c>Access</c> section for the host, so it let the visitor
/// through unchecked, and serving that would skip the sign-in this edge requires;</item>
/// <item>an assertion under another key id: the edges do not share <c>access-signing.key</c>, so the app
/// would refuse it anyway, with only "the signature is not the edge's" to say why.</item>
/// </list>
/// Event ids 470-471, each at most once per 10 s (Hosting.PeerRepeatedLogThrottle: every visitor request
/// repeats them), the metric counting every one. The log names the peer, the host and the key ids
/// (public), never the assertion.
/// </summary>
internal static partial class PeerAssertions
{
    /// <summary>Whether the forwarded request may go on (its assertion set for the forwarder); otherwise the visitor got the 502 page.</summary>
    public static async Task<bool> AcceptAsync(HttpContext context, string fromEdge, SignInRoute route, EdgeAssertionSigner signer, SignInMetrics metrics, ILogger logger)
    {
        var host = context.Request.Host.Host.TrimEnd('.').ToLowerInvariant();
        var requestId = EdgeRequestFeature.For(context).RequestId;
        var sent = context.Request.Headers[TunnelHeaderNames.Identity];
        if (sent.Count == 1 && sent[0] is { Length: > 0 } assertion)
        {
            var keyId = KeyIdOf(assertion);
            if (keyId == signer.KeyId)
            {
                context.Features.Set(new SignInIdentityFeature(assertion));
                return true;
            }

            metrics.Decided(route.Name, "peer_key_differs");
            KeysDiffer(logger, requestId, host, fromEdge, keyId ?? "(none)", signer.KeyId);
        }
        else
        {
            metrics.Decided(route.Name, "peer_no_assertion");
            NoAssertion(logger, requestId, host, fromEdge);
        }

        await ErrorPages.WriteAsync(context, StatusCodes.Status502BadGateway, ErrorPages.TitleFor(StatusCodes.Status502BadGateway),
            $"The edges serving {host} could not hand on who you are. The operator can find why in the edges' log.", host, requestId).ConfigureAwait(false);
        return false;
    }

    /// <summary>The <c>kid</c> in a compact JWT's header, or <c>null</c> when there is none to read.</summary>
    internal static string? KeyIdOf(string assertion)
    {
        var end = assertion.IndexOf('.', StringComparison.Ordinal);
        if (end <= 0 || end > 512)
        {
            return null;
        }

        try
        {
            using var header = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(assertion.AsSpan(0, end)));
            return header.RootElement.ValueKind == JsonValueKind.Object && header.RootElement.TryGetProperty("kid", out var kid) && kid.ValueKind == JsonValueKind.String
                ? kid.GetString()
                : null;
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return null;
        }
    }

    [LoggerMessage(470, LogLevel.Warning, "Request {RequestId} to {Host} forwarded by edge {Peer}: its identity assertion is signed with key {PeerKeyId}, not this edge's key {OwnKeyId}, so the app (which has this edge's key) could not accept it; refused with 502. The edges' access-signing.key differ across the cluster: give every edge the same access-signing.key and access-keys/.", EventName = "PeerAssertionKeyDiffers")]
    private static partial void KeysDiffer(ILogger logger, string requestId, string host, string peer, string peerKeyId, string ownKeyId);

    [LoggerMessage(471, LogLevel.Warning, "Request {RequestId} to {Host} forwarded by edge {Peer} carries no identity assertion, but the host has an Access section here: the edges' Access configuration differs (that edge has none for the host and let the visitor through unchecked); refused with 502. Give every edge of the cluster the same Edge:Hosts Access sections.", EventName = "PeerAssertionMissing")]
    private static partial void NoAssertion(ILogger logger, string requestId, string host, string peer);
}
