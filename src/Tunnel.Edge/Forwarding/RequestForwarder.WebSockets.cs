using System.Buffers;
using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Forwarding;

/// <summary>A WebSocket the origin accepted: the visitor's handshake completed, then bytes both ways until either side ends.</summary>
internal sealed partial class RequestForwarder
{
    /// <summary>
    /// Completes the visitor's handshake once the origin accepted the extended CONNECT, then passes
    /// bytes both ways until either side ends. WebSocket frames pass as bytes, so close codes and
    /// negotiated extensions reach the other end as sent.
    /// </summary>
    private async Task TunnelWebSocketAsync(HttpContext context, IForwardRoute route, WebSocketUpgrade webSocket, HttpResponseMessage upstream, string host)
    {
        var requestId = Access.EdgeRequestFeature.For(context).RequestId;
        // The origin's choices (subprotocol, extensions, cookies) reach the visitor; frames pass as bytes,
        // so whatever the two ends negotiated works end to end.
        route.CopyResponseHeaders(upstream, context.Response.Headers, withContentHeaders: false);
        Stream origin;
        Stream visitor;
        try
        {
            origin = await upstream.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            visitor = await webSocket.AcceptAsync(context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        EdgeLog.WebSocketOpened(_logger, requestId, host, webSocket.IsExtendedConnect ? "HTTP/2" : "HTTP/1.1");
        var started = Stopwatch.GetTimestamp();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        using var idle = new IdleWatch(_options.Limits.WebSocketIdleTimeout, _time, stop);
        var up = PumpAsync(visitor, origin, idle, stop.Token);
        var down = PumpAsync(origin, visitor, idle, stop.Token);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);

        // One side ended: the other has nothing left to talk to. An HTTP/2 stream on the tunnel cannot
        // be half-closed here, so the origin's stream is reset when the response is disposed; a broken
        // origin breaks the visitor's connection rather than ending it cleanly.
        await stop.CancelAsync().ConfigureAwait(false);
        var (fromVisitor, visitorError) = await up.ConfigureAwait(false);
        var (toVisitor, originError) = await down.ConfigureAwait(false);
        string outcome;
        if (idle.Expired)
        {
            // Both sides close: the origin's stream is reset with the response, the visitor's connection here.
            outcome = "idle";
            EdgeLog.WebSocketIdleClosed(_logger, requestId, host, idle.Timeout.TotalSeconds);
            _metrics?.VisitorRefused(VisitorRefusals.WebSocketIdle);
            context.Abort();
        }
        else if (first == down)
        {
            outcome = originError is null ? "origin closed" : "origin broke off: " + Describe(originError);
            if (originError is not null && !context.RequestAborted.IsCancellationRequested)
            {
                context.Abort();
            }
        }
        else
        {
            outcome = visitorError is null ? "visitor closed" : "visitor broke off: " + Describe(visitorError);
        }

        EdgeLog.WebSocketClosed(_logger, requestId, host, outcome, Stopwatch.GetElapsedTime(started).TotalSeconds, fromVisitor, toVisitor);
    }

    /// <summary>Copies bytes until the source ends, each read written and flushed at once.</summary>
    private static async Task<(long Bytes, Exception? Error)> PumpAsync(Stream source, Stream destination, IdleWatch idle, CancellationToken cancellationToken)
    {
        // Yield first so both directions start before either runs synchronously to its first wait.
        await Task.Yield();
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        long total = 0;
        try
        {
            while (true)
            {
                var read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return (total, null);
                }

                idle.Touch();
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
                total += read;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
        {
            return (total, cancellationToken.IsCancellationRequested ? null : ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
