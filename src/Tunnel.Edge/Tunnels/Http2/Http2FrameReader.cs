using System.Buffers;
using System.Runtime.CompilerServices;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// Reads whole frames from the connection's stream. An idle connection holds no buffer: when nothing
/// is buffered it waits with a zero-byte read (SslStream then also lets go of its own buffer) and
/// rents one only once bytes are there; it returns it whenever everything read has been consumed.
/// The current frame's payload is valid until the next <see cref="ReadFrameAsync"/> or
/// <see cref="Dispose"/>, and only on the reader's own loop. A read that waits reuses a pooled state
/// machine, so an idle connection's frames (heartbeats, PINGs) allocate nothing.
/// </summary>
internal sealed class Http2FrameReader(Stream stream, int maxFrameSize) : IDisposable
{
    private readonly int _bufferSize = Http2FrameHeader.Size + maxFrameSize;
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private int _consumed;

    public Http2FrameHeader Header { get; private set; }

    /// <summary>The current frame's payload.</summary>
    public ReadOnlySpan<byte> Payload => _buffer.AsSpan(_start + Http2FrameHeader.Size, Header.Length);

    /// <summary>Reads the next frame; <c>false</c> when the stream ended cleanly between frames.</summary>
    /// <exception cref="Http2ConnectionException">A frame larger than this end accepts.</exception>
    /// <exception cref="IOException">The stream ended inside a frame.</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> ReadFrameAsync(CancellationToken cancellationToken)
    {
        _start += _consumed;
        _consumed = 0;
        while (true)
        {
            var buffered = _end - _start;
            if (buffered >= Http2FrameHeader.Size)
            {
                var header = Http2FrameHeader.Read(_buffer.AsSpan(_start));
                if (header.Length > maxFrameSize)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, $"The origin sent a {header.Type} frame of {header.Length} bytes; at most {maxFrameSize} are allowed.");
                }

                if (buffered >= Http2FrameHeader.Size + header.Length)
                {
                    Header = header;
                    _consumed = Http2FrameHeader.Size + header.Length;
                    return true;
                }
            }

            if (buffered == 0)
            {
                ReturnBuffer();
                await stream.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
            }

            if (_buffer is null)
            {
                _buffer = ArrayPool<byte>.Shared.Rent(_bufferSize);
                _start = _end = 0;
            }
            else if (_start > 0)
            {
                // Room for a whole frame after what is buffered: move the partial frame to the front.
                _buffer.AsSpan(_start, buffered).CopyTo(_buffer);
                _start = 0;
                _end = buffered;
            }

            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                if (_end - _start == 0)
                {
                    ReturnBuffer();
                    return false;
                }

                throw new IOException($"The tunnel connection ended inside a frame ({_end - _start} bytes of it read).");
            }

            _end += read;
        }
    }

    /// <summary>Gives the buffer back if everything in it has been consumed (the reader is about to wait).</summary>
    private void ReturnBuffer()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            _start = _end = 0;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        _consumed = 0;
        ReturnBuffer();
    }
}

/// <summary>A connection error (RFC 9113 section 5.4.1): the connection is closed with GOAWAY and this code.</summary>
/// <param name="code">The GOAWAY's error code.</param>
/// <param name="message">What the origin did, for the log and the GOAWAY's debug data.</param>
/// <param name="errorType">
/// What the origin did, for the log and the <c>error.type</c> of the edge's metric (<c>control_flood</c>,
/// <c>idle_stream</c>...); by default the code's name (<c>protocol_error</c>...).
/// </param>
internal sealed class Http2ConnectionException(Http2ErrorCode code, string message, string? errorType = null) : Exception(message)
{
    public Http2ErrorCode Code { get; } = code;

    public string ErrorType { get; } = errorType ?? Http2Errors.TypeOf(code);
}
