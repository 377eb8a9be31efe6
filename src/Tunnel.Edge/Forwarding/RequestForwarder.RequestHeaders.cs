using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Tunnel.Edge.Tunnels;
using Tunnel.Protocol;

namespace Tunnel.Edge.Forwarding;

/// <summary>The request as the origin gets it: method, target, the visitor's headers less those the edge strips, and the edge's own fields.</summary>
internal sealed partial class RequestForwarder
{
    internal static HttpRequestMessage CreateRequest(HttpContext context, StrongBox bodyStarted, byte[]? replayableBody, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
    {
        var source = context.Request;
        var request = new HttpRequestMessage(MethodOf(source, webSocket), new Uri(TunnelConnection.RequestUriPrefix + TargetOf(context), UriKind.Absolute))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        SetContent(request, context, bodyStarted, replayableBody, deadline, webSocket);
        var connectionTokens = GetConnectionTokens(source.Headers);
        foreach (var (name, values) in source.Headers)
        {
            if (!IsPassedOn(name, connectionTokens, webSocket))
            {
                continue;
            }

            // One value is the common case: added as a string, without boxing the values to enumerate them.
            var added = values.Count == 1
                ? request.Headers.TryAddWithoutValidation(name, values[0])
                : request.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
            if (!added && request.Content is not null)
            {
                _ = values.Count == 1
                    ? request.Content.Headers.TryAddWithoutValidation(name, values[0])
                    : request.Content.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
            }
        }

        // HTTP/2 :authority is the visitor's Host.
        request.Headers.Host = source.Host.Value;
        AddEdgeFields(context, new HeaderCollectionFields(request.Headers));
        return request;
    }

    /// <summary>
    /// The same request as <see cref="CreateRequest"/> builds, for a tunnel connection: its fields are
    /// written from the visitor's headers straight into the HPACK block, and the response's come back
    /// as a list (no URI, no header collections filled and read back).
    /// </summary>
    internal static HttpRequestMessage CreateTunnelRequest(HttpContext context, StrongBox bodyStarted, byte[]? replayableBody, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
    {
        var request = new TunnelRequestMessage(MethodOf(context.Request, webSocket), context, TargetOf(context), webSocket);
        SetContent(request, context, bodyStarted, replayableBody, deadline, webSocket);
        return request;
    }

    private static HttpMethod MethodOf(HttpRequest source, WebSocketUpgrade? webSocket) =>
        // Either WebSocket handshake becomes an RFC 8441 extended CONNECT, which Kestrel on the origin
        // hands to the app's WebSocket middleware like any HTTP/2 WebSocket.
        webSocket is null ? HttpMethod.Parse(source.Method) : HttpMethod.Connect;

    private static string TargetOf(HttpContext context)
    {
        var source = context.Request;
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(target) || target[0] != '/')
        {
            target = source.PathBase.Add(source.Path).ToUriComponent() + source.QueryString.ToUriComponent();
        }

        return target.Length == 0 ? "/" : target;
    }

    private static void SetContent(HttpRequestMessage request, HttpContext context, StrongBox bodyStarted, byte[]? replayableBody, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
    {
        var source = context.Request;
        var bodyDetection = context.Features.Get<IHttpRequestBodyDetectionFeature>();
        if (webSocket is not null)
        {
            // No content: the HTTP client then hands back the response stream as a duplex stream,
            // the same way ClientWebSocket uses it.
            request.Headers.Protocol = webSocket.Protocol;
        }
        else if (replayableBody is not null)
        {
            // Sent as read; an empty body with Content-Length: 0 stays a declared empty body.
            request.Content = new ByteArrayContent(replayableBody);
            request.Content.Headers.ContentLength = replayableBody.Length;
        }
        else if (bodyDetection?.CanHaveBody ?? (source.ContentLength > 0))
        {
            request.Content = new StreamingRequestContent(source.Body, source.ContentLength, bodyStarted, context.RequestAborted, deadline);
        }
    }

    /// <summary>Whether a visitor's request header goes on to the origin.</summary>
    private static bool IsPassedOn(string name, HashSet<string>? connectionTokens, WebSocketUpgrade? webSocket) =>
        !(name.Length == 0 || name[0] == ':' || HopByHopHeaders.Contains(name) || IsForwardingClaim(name)
            || (connectionTokens is not null && connectionTokens.Contains(name))
            || (webSocket is not null && WebSocketOnlyHttp11Headers.Contains(name)));

    /// <summary>
    /// Whether a header claims what only the edge may tell the origin (who the visitor is, how it came,
    /// the tunnel's own fields), in any spelling: CGI-style servers and many frameworks read
    /// <c>X_Forwarded_For</c> as <c>X-Forwarded-For</c>, so underscores count as dashes.
    /// </summary>
    private static bool IsForwardingClaim(string name)
    {
        if (name.Contains('_', StringComparison.Ordinal))
        {
            name = name.Replace('_', '-');
        }

        return StrippedRequestHeaders.Contains(name)
            || name.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("X-Tunnel-", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The fields the edge adds to every request, into either form a request is built in (header
    /// collections for the inter-edge hop, the HPACK block for a tunnel; see <see cref="IRequestFields"/>): TE: trailers when the visitor
    /// accepts them, the forwarded headers that say who asked and how, and the edge span's trace context.
    /// </summary>
    private static void AddEdgeFields<TFields>(HttpContext context, TFields fields)
        where TFields : IRequestFields
    {
        var source = context.Request;
        if (source.Headers.TE.ToString().Contains("trailers", StringComparison.OrdinalIgnoreCase))
        {
            fields.Add("TE", "trailers");
        }

        fields.Add(TunnelHeaderNames.ForwardedFor, context.Connection.RemoteIpAddress?.ToString() ?? "");
        fields.Add(TunnelHeaderNames.ForwardedProto, source.Scheme);
        fields.Add(TunnelHeaderNames.ForwardedHost, source.Host.Value ?? "");

        // Who the edge signed in (Access.SignIn); a visitor's own copy was left out with every X-Tunnel-* name.
        if (context.Features.Get<Access.SignIn.SignInIdentityFeature>() is { } identity)
        {
            fields.Add(TunnelHeaderNames.Identity, identity.Assertion);
        }
        if (System.Diagnostics.Activity.Current is { } span)
        {
            System.Diagnostics.DistributedContextPropagator.Current.Inject(span, fields, static (carrier, name, value) => ((IRequestFields)carrier!).Add(name, value ?? ""));
        }
    }

    /// <summary>A visitor's request as a tunnel stream: its fields are written from the visitor's headers as the block is encoded.</summary>
    private sealed class TunnelRequestMessage(HttpMethod method, HttpContext context, string target, WebSocketUpgrade? webSocket)
        : Tunnels.Http2.Http2FieldsRequest(method)
    {
        public override string PathAndQuery => target;

        public override string Authority => context.Request.Host.Value ?? "";

        public override string? Protocol => webSocket?.Protocol;

        public override void WriteFields(Tunnels.Http2.HpackEncoder encoder)
        {
            var headers = context.Request.Headers;
            var connectionTokens = GetConnectionTokens(headers);
            foreach (var (name, values) in headers)
            {
                if (!IsPassedOn(name, connectionTokens, webSocket))
                {
                    continue;
                }

                // A field once per value: HTTP/2 lets a field repeat, and the origin joins them as it
                // would joined values (cookies with "; ", RFC 9113 section 8.2.3).
                foreach (var value in values)
                {
                    encoder.WriteLiteral(name, value ?? "");
                }
            }

            AddEdgeFields(context, new HpackFields(encoder));
        }
    }

    private static HashSet<string>? GetConnectionTokens(IHeaderDictionary headers)
    {
        var connection = headers.Connection;
        if (connection.Count == 0)
        {
            return null;
        }

        // What browsers send: names nothing beyond the hop-by-hop fields already left out.
        if (connection.Count == 1 && connection[0] is { } only
            && (only.Equals("keep-alive", StringComparison.OrdinalIgnoreCase) || only.Equals("close", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        return ParseTokens(connection.ToString());
    }

    private static HashSet<string> ParseTokens(string value) =>
        new(value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.OrdinalIgnoreCase);
}
