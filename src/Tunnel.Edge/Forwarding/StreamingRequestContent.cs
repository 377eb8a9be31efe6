using System.Buffers;
using System.Net;

namespace Tunnel.Edge.Forwarding;

/// <summary>
/// The visitor's request body, streamed to the origin as it arrives (never buffered whole), each
/// chunk flushed so full-duplex exchanges make progress.
/// </summary>
internal sealed class StreamingRequestContent : HttpContent
{
    private const int CopyBufferSize = 64 * 1024;
    private readonly Stream _source;
    private readonly RequestForwarder.StrongBox _started;
    private readonly CancellationToken _visitorAborted;
    private readonly ResponseHeadersDeadline? _deadline;
    private readonly long? _contentLength;

    public StreamingRequestContent(Stream source, long? contentLength, RequestForwarder.StrongBox started, CancellationToken visitorAborted, ResponseHeadersDeadline? deadline = null)
    {
        _source = source;
        _started = started;
        _visitorAborted = visitorAborted;
        _deadline = deadline;
        _contentLength = contentLength;
        if (contentLength is { } length)
        {
            Headers.ContentLength = length;
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        if (_started.Value)
        {
            // The HTTP client retries a refused request on its own; a half-read visitor body cannot be
            // sent again, and sending what is left would corrupt it.
            throw new InvalidOperationException("The visitor's request body was already partly sent and cannot be replayed.");
        }

        _started.Value = true;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _visitorAborted);
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            // Send the request's headers now: in a full-duplex call the visitor may wait for the
            // origin's response before it sends any body, and the origin cannot answer a request it
            // has not seen.
            await stream.FlushAsync(linked.Token).ConfigureAwait(false);
            while (true)
            {
                var read = await _source.ReadAsync(buffer, linked.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    _deadline?.Start();
                    break;
                }

                await stream.WriteAsync(buffer.AsMemory(0, read), linked.Token).ConfigureAwait(false);
                await stream.FlushAsync(linked.Token).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        // Not Headers.ContentLength: when unset, that getter asks this method, recursing without end.
        length = _contentLength ?? 0;
        return _contentLength is not null;
    }
}
