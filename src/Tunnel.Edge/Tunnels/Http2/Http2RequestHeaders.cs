namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>Turns a request message into its HPACK header block (RFC 9113 section 8.3.1, RFC 8441 section 4).</summary>
internal static class Http2RequestHeaders
{
    /// <summary>The encoded block; the caller disposes it to return its buffer.</summary>
    /// <exception cref="HttpRequestException">A header cannot be sent over HTTP/2.</exception>
    public static HpackEncoder Encode(HttpRequestMessage request, bool extendedConnect)
    {
        // A fields request names its target itself; any other request is read from its URI and headers.
        var fieldsRequest = request as Http2FieldsRequest;
        string scheme, path, authority;
        if (fieldsRequest is not null)
        {
            scheme = "http";
            path = fieldsRequest.PathAndQuery;
            authority = fieldsRequest.Authority;
        }
        else
        {
            var uri = request.RequestUri ?? throw new HttpRequestException("The request has no URI.");
            scheme = uri.Scheme;
            path = PathOf(uri);
            authority = request.Headers.Host ?? uri.Authority;
        }

        var encoder = new HpackEncoder();
        try
        {
            WriteMethod(encoder, request.Method, extendedConnect);
            if (extendedConnect)
            {
                encoder.WritePseudoLiteral(":protocol", ProtocolOf(request)!);
            }

            WriteSchemeAndPath(encoder, scheme, path);
            encoder.WriteLiteral(HpackStaticTable.Authority, authority);
            if (fieldsRequest is not null)
            {
                fieldsRequest.WriteFields(encoder);
            }
            else
            {
                WriteHeaderFields(request, encoder);
            }

            if (!extendedConnect)
            {
                WriteContentFields(encoder, request);
            }

            return encoder;
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    private static void WriteMethod(HpackEncoder encoder, HttpMethod method, bool extendedConnect)
    {
        if (extendedConnect || method == HttpMethod.Connect)
        {
            encoder.WriteLiteral(HpackStaticTable.MethodGet, "CONNECT");
        }
        else if (method == HttpMethod.Get)
        {
            encoder.WriteIndexed(HpackStaticTable.MethodGet);
        }
        else if (method == HttpMethod.Post)
        {
            encoder.WriteIndexed(HpackStaticTable.MethodPost);
        }
        else
        {
            encoder.WriteLiteral(HpackStaticTable.MethodGet, method.Method);
        }
    }

    private static void WriteSchemeAndPath(HpackEncoder encoder, string scheme, string path)
    {
        if (string.Equals(scheme, "http", StringComparison.Ordinal))
        {
            encoder.WriteIndexed(HpackStaticTable.SchemeHttp);
        }
        else if (string.Equals(scheme, "https", StringComparison.Ordinal))
        {
            encoder.WriteIndexed(HpackStaticTable.SchemeHttps);
        }
        else
        {
            encoder.WriteLiteral(HpackStaticTable.SchemeHttp, scheme);
        }

        if (path == "/")
        {
            encoder.WriteIndexed(HpackStaticTable.PathRoot);
        }
        else
        {
            encoder.WriteLiteral(HpackStaticTable.PathRoot, path);
        }
    }

    /// <summary>The content's fields (not for an extended CONNECT, whose body is the tunnel).</summary>
    private static void WriteContentFields(HpackEncoder encoder, HttpRequestMessage request)
    {
        if (request.Content is { } content)
        {
            if (content.Headers.ContentLength is { } length)
            {
                encoder.WriteLiteral(HpackStaticTable.ContentLength, length.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            foreach (var header in content.Headers.NonValidated)
            {
                if (string.Equals(header.Key, "Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                encoder.WriteLiteral(header.Key, header.Value.Count == 1 ? First(header.Value) : header.Value.ToString());
            }
        }
        else if (request.Method == HttpMethod.Post || request.Method == HttpMethod.Put)
        {
            // As HTTP/1.1 clients do: a POST or PUT without a body says so.
            encoder.WriteLiteral(HpackStaticTable.ContentLength, "0");
        }
    }

    /// <summary>
    /// The <c>:protocol</c> of an extended CONNECT (RFC 8441), or <c>null</c>. A fields request says so
    /// itself; asking any other request's <c>Headers</c> makes its header collection if it has none.
    /// </summary>
    public static string? ProtocolOf(HttpRequestMessage request) =>
        request is Http2FieldsRequest fields ? fields.Protocol : request.Headers.Protocol;

    private static void WriteHeaderFields(HttpRequestMessage request, HpackEncoder encoder)
    {
        foreach (var header in request.Headers.NonValidated)
        {
            var name = header.Key;
            if (name.Length == 0 || name[0] == ':' || IsConnectionSpecific(name) || string.Equals(name, "Host", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var value = header.Value.Count == 1 ? First(header.Value) : header.Value.ToString();
            if (string.Equals(name, "TE", StringComparison.OrdinalIgnoreCase) && !string.Equals(value.Trim(), "trailers", StringComparison.OrdinalIgnoreCase))
            {
                // Section 8.2.2: TE may only say "trailers".
                continue;
            }

            encoder.WriteLiteral(name, value);
        }
    }

    private static string First(System.Net.Http.Headers.HeaderStringValues values)
    {
        foreach (var value in values)
        {
            return value;
        }

        return string.Empty;
    }

    private static bool IsConnectionSpecific(string name) =>
        string.Equals(name, "Connection", StringComparison.OrdinalIgnoreCase)
        || string.Equals(name, "Keep-Alive", StringComparison.OrdinalIgnoreCase)
        || string.Equals(name, "Proxy-Connection", StringComparison.OrdinalIgnoreCase)
        || string.Equals(name, "Transfer-Encoding", StringComparison.OrdinalIgnoreCase)
        || string.Equals(name, "Upgrade", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The request target as the caller wrote it: taken from the URI's original string, so nothing is
    /// re-escaped or normalised on the way to the origin. The fragment is never sent.
    /// </summary>
    internal static string PathOf(Uri uri)
    {
        var original = uri.OriginalString;
        var schemeEnd = original.IndexOf("://", StringComparison.Ordinal);
        if (uri.IsAbsoluteUri && schemeEnd > 0)
        {
            var start = original.IndexOfAny(['/', '?', '#'], schemeEnd + 3);
            if (start >= 0)
            {
                var end = original.IndexOf('#', start);
                var target = end < 0 ? original[start..] : original[start..end];
                if (target.Length == 0)
                {
                    return "/";
                }

                return target[0] == '/' ? target : "/" + target;
            }

            return "/";
        }

        return uri.PathAndQuery;
    }
}
