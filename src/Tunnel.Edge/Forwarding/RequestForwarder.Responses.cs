using System.Buffers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Tunnel.Edge.Forwarding;

/// <summary>The origin's response to the visitor: status, headers less hop-by-hop ones, the body as it comes, trailers.</summary>
internal sealed partial class RequestForwarder
{
    private async Task CopyResponseAsync(HttpContext context, IForwardRoute route, HttpResponseMessage upstream, string host)
    {
        var response = context.Response;
        response.StatusCode = (int)upstream.StatusCode;
        route.CopyResponseHeaders(upstream, response.Headers, withContentHeaders: true);

        // Stream as the origin writes: server-sent events and long polls must not wait in a buffer.
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            Stream body;
            try
            {
                body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return;
            }

            // The response is not started here: it starts with the first body bytes, or with a flush
            // once a read has to wait. A response the origin ended with its headers (a gRPC
            // trailers-only status, 204, 304, HEAD, an empty body) is then never started by the
            // forwarder, and Kestrel sends it as one HEADERS frame with END_STREAM, as the origin did.
            // Started early, it went out as HEADERS and an empty DATA frame with END_STREAM, and gRPC
            // clients read the status fields as initial metadata of a call that ended without a status.
            await using (body.ConfigureAwait(false))
            {
                if (!await CopyBodyAsync(context, body, host).ConfigureAwait(false))
                {
                    return;
                }
            }

            if (Tunnels.Http2.Http2ResponseFields.HasTrailers(upstream) && response.SupportsTrailers())
            {
                foreach (var (name, values) in upstream.TrailingHeaders)
                {
                    response.AppendTrailer(name, new StringValues(values.ToArray()));
                }
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The visitor left; disposing the upstream response resets the stream to the origin.
        }
        catch (IOException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Copies the origin's body to the visitor as it comes; <c>false</c> when it broke off (the visitor's
    /// response is then cut, so it cannot pass for a whole one).
    /// </summary>
    private async Task<bool> CopyBodyAsync(HttpContext context, Stream body, string host)
    {
        var response = context.Response;
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            // Bytes [start, end) of the buffer are read and not yet sent. What the tunnel already
            // delivered is gathered into one write; whatever is held is sent before waiting for more,
            // so a stream still reaches the visitor as the origin writes it.
            var headersFlushed = false;
            int start = 0, end = 0;
            while (true)
            {
                if (start == end)
                {
                    start = end = 0;
                }
                else if (end == buffer.Length)
                {
                    await WriteBodyAsync(response, buffer.AsMemory(start, end - start), context.RequestAborted).ConfigureAwait(false);
                    start = end = 0;
                }

                int read;
                try
                {
                    var reading = body.ReadAsync(buffer.AsMemory(end), context.RequestAborted);
                    if (!reading.IsCompleted && end > start)
                    {
                        // The read fills the buffer after end; what is held before it goes out now.
                        headersFlushed = true;
                        await WriteBodyAsync(response, buffer.AsMemory(start, end - start), context.RequestAborted).ConfigureAwait(false);
                        start = end;
                    }
                    else if (!headersFlushed && !reading.IsCompleted)
                    {
                        // Starting the response only queues its headers. The origin answered but has
                        // no body yet (a full-duplex call waiting for the visitor's next message, a
                        // long poll): send the headers now, or a visitor that waits for them before
                        // sending more deadlocks with an origin that waits for the visitor.
                        headersFlushed = true;
                        await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                    }

                    read = await reading.ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException && !context.RequestAborted.IsCancellationRequested)
                {
                    await FailAsync(context, _logger, host, new(ForwarderError.ResponseBroken) { Exception = ex }).ConfigureAwait(false);
                    return false;
                }

                if (read == 0)
                {
                    break;
                }

                end += read;
            }

            if (end > start)
            {
                await WriteBodyAsync(response, buffer.AsMemory(start, end - start), context.RequestAborted).ConfigureAwait(false);
            }

            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async ValueTask WriteBodyAsync(HttpResponse response, ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Passes the origin's response headers on from HttpClient's header collections (the inter-edge
    /// hop), less hop-by-hop ones and those its Connection header names.
    /// </summary>
    private static void CopyHeaderCollections(HttpResponseMessage upstream, IHeaderDictionary to, bool withContentHeaders)
    {
        var connectionTokens = GetConnectionTokens(upstream.Headers);
        CopyHeaders(upstream.Headers, to, connectionTokens);
        if (withContentHeaders)
        {
            CopyHeaders(upstream.Content.Headers, to, connectionTokens);
        }
    }

    /// <summary>
    /// Passes a tunnel response's fields on, in order, less hop-by-hop ones and those its Connection
    /// header names: the first of a name replaces what the edge may have set, a repeated one
    /// (Set-Cookie) is added to it.
    /// </summary>
    internal static void CopyResponseFields(IReadOnlyList<KeyValuePair<string, string>> fields, IHeaderDictionary to)
    {
        HashSet<string>? tokens = null;
        foreach (var (name, value) in fields)
        {
            if (string.Equals(name, "Connection", StringComparison.OrdinalIgnoreCase))
            {
                tokens ??= new(StringComparer.OrdinalIgnoreCase);
                tokens.UnionWith(ParseTokens(value));
            }
        }

        for (var i = 0; i < fields.Count; i++)
        {
            var (name, value) = fields[i];
            if (HopByHopHeaders.Contains(name) || (tokens is not null && tokens.Contains(name)))
            {
                continue;
            }

            if (IsRepeated(fields, i))
            {
                to.Append(name, value);
            }
            else
            {
                to[name] = value;
            }
        }
    }

    private static bool IsRepeated(IReadOnlyList<KeyValuePair<string, string>> fields, int index)
    {
        var name = fields[index].Key;
        for (var i = 0; i < index; i++)
        {
            if (string.Equals(fields[i].Key, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    internal static void CopyHeaders(System.Net.Http.Headers.HttpHeaders from, IHeaderDictionary to, HashSet<string>? connectionTokens)
    {
        foreach (var (name, values) in from.NonValidated)
        {
            if (HopByHopHeaders.Contains(name) || (connectionTokens is not null && connectionTokens.Contains(name)))
            {
                continue;
            }

            to[name] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues(values.ToArray());
        }
    }

    private static HashSet<string>? GetConnectionTokens(System.Net.Http.Headers.HttpResponseHeaders headers) =>
        headers.NonValidated.TryGetValues("Connection", out var values) ? ParseTokens(values.ToString()) : null;
}
