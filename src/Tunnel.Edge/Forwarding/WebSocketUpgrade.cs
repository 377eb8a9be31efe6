using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Tunnel.Edge.Forwarding;

/// <summary>
/// A visitor's request to switch protocols (an HTTP/1.1 WebSocket Upgrade, or an HTTP/2 extended
/// CONNECT), which the tunnel carries as an HTTP/2 extended CONNECT (RFC 8441) to the origin. This
/// holds what the two handshakes do not share: the HTTP/1.1 key whose answer the edge computes
/// itself, because HTTP/2 WebSockets have neither <c>Sec-WebSocket-Key</c> nor <c>-Accept</c>.
/// </summary>
internal sealed class WebSocketUpgrade
{
    // RFC 6455 section 1.3: the accept value is the SHA-1 of the key and this GUID, base64.
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    private readonly IHttpUpgradeFeature? _upgrade;
    private readonly IHttpExtendedConnectFeature? _extendedConnect;
    private readonly string? _key;

    private WebSocketUpgrade(string protocol, IHttpUpgradeFeature? upgrade, IHttpExtendedConnectFeature? extendedConnect, string? key)
    {
        Protocol = protocol;
        _upgrade = upgrade;
        _extendedConnect = extendedConnect;
        _key = key;
    }

    /// <summary>The <c>:protocol</c> sent on the tunnel (<c>websocket</c>).</summary>
    public string Protocol { get; }

    /// <summary>Whether the visitor spoke HTTP/2 (extended CONNECT) rather than HTTP/1.1 (Upgrade).</summary>
    public bool IsExtendedConnect => _extendedConnect is not null;

    /// <summary>
    /// The upgrade the visitor asks for, or <c>null</c> for an ordinary request. An HTTP/1.1 WebSocket
    /// request without a valid key yields an error message in <paramref name="error"/> instead.
    /// </summary>
    public static WebSocketUpgrade? Detect(HttpContext context, out string? error)
    {
        error = null;
        var extendedConnect = context.Features.Get<IHttpExtendedConnectFeature>();
        if (extendedConnect is { IsExtendedConnect: true, Protocol: { Length: > 0 } protocol })
        {
            return new WebSocketUpgrade(protocol, null, extendedConnect, null);
        }

        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        var request = context.Request;
        if (upgrade is not { IsUpgradableRequest: true } || !HttpMethods.IsGet(request.Method) || !HasToken(request.Headers.Upgrade, "websocket"))
        {
            // Other upgrades (h2c, TLS) are not tunnelled: the request goes on without its Upgrade header.
            return null;
        }

        var key = request.Headers.SecWebSocketKey.ToString().Trim();
        if (!IsValidKey(key))
        {
            error = "The WebSocket request has no valid Sec-WebSocket-Key.";
            return null;
        }

        return new WebSocketUpgrade("websocket", upgrade, null, key);
    }

    /// <summary>
    /// Answers the visitor's handshake with the origin's headers (101 with the computed
    /// <c>Sec-WebSocket-Accept</c> for HTTP/1.1, 200 for HTTP/2) and returns the visitor's stream.
    /// </summary>
    public async Task<Stream> AcceptAsync(HttpContext context)
    {
        if (_extendedConnect is not null)
        {
            return await _extendedConnect.AcceptAsync().ConfigureAwait(false);
        }

        var headers = context.Response.Headers;
        headers.Upgrade = "websocket";
        headers.SecWebSocketAccept = ComputeAccept(_key!);
        return await _upgrade!.UpgradeAsync().ConfigureAwait(false);
    }

    internal static string ComputeAccept(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));

    private static bool IsValidKey(string key)
    {
        // RFC 6455 section 4.2.1: a base64-encoded 16-byte value.
        Span<byte> decoded = stackalloc byte[18];
        return key.Length == 24 && Convert.TryFromBase64String(key, decoded, out var length) && length == 16;
    }

    private static bool HasToken(Microsoft.Extensions.Primitives.StringValues values, string token)
    {
        foreach (var value in values)
        {
            foreach (var part in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (part.Equals(token, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
