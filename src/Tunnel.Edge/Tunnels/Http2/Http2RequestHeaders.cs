namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>Turns a request message into its HPACK header block (RFC 9113 section 8.3.1, RFC 8441 section 4).</summary>
internal static class Http2RequestHeaders
{
    /// <summary>The encoded block; the caller disposes it to return its buffer.</summary>
    /// <exception cref="HttpRequestException">A header cannot be sent over HTTP/2.</exception>
    public static HpackEncoder Encode(HttpRequestMessage request, bool extendedConnect)
    {
        var fieldsRequest = request as Http2FieldsRequest;
        var uri = fieldsRequest is null ? request.RequestUri ?? throw new HttpRequestException("The request has no URI.") : null;
        var encoder = new HpackEncoder();
        try
        {
            var method = request.Method;
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

            if (extendedConnect)
            {
                encoder.WritePseudoLiteral(":protocol", fieldsRequest is null ? request.Headers.Protocol! : fieldsRequest.Protocol!);
            }

            if (uri is null || string.Equals(uri.Scheme, "http", StringComparison.Ordinal))
            {
                encoder.WriteIndexed(HpackStaticTable.SchemeHttp);
            }
            else if (string.Equals(uri.Scheme, "https", StringComparison.Ordinal))
            {
                encoder.WriteIndexed(HpackStaticTable.SchemeHttps);
            }
            else
            {
                encoder.WriteLiteral(HpackStaticTable.SchemeHttp, uri.Scheme);
            }

            var path = uri is null ? fieldsRequest!.PathAndQuery : PathOf(uri);
            if (path == "/")
            {
                encoder.WriteIndexed(HpackStaticTable.PathRoot);
            }
            else
            {
                encoder.WriteLiteral(HpackStaticTable.PathRoot, path);
            }

            if (uri is null)
            {
                encoder.WriteLiteral(HpackStaticTable.Authority, fieldsRequest!.Authority);
                fieldsRequest.WriteFields(encoder);
            }
            else
            {
                encoder.WriteLiteral(HpackStaticTable.Authority, request.Headers.Host ?? uri.Authority);
                WriteHeaderFields(request, encoder);
            }

            if (!extendedConnect && request.Content is { } content)
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
            else if (!extendedConnect && (method == HttpMethod.Post || method == HttpMethod.Put))
            {
                // As HTTP/1.1 clients do: a POST or PUT without a body says so.
                encoder.WriteLiteral(HpackStaticTable.ContentLength, "0");
            }

            return encoder;
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

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
