using System.Buffers;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// A header block split over HEADERS and CONTINUATION frames, gathered in a rented buffer until
/// END_HEADERS, within the bounds that keep an origin from holding the reader or growing its memory:
/// <see cref="Http2Connection.MaxHeaderBlockBytes"/> and <see cref="Http2Connection.MaxContinuationFrames"/>.
/// Used by the reader loop alone.
/// </summary>
internal sealed class Http2HeaderBlock : IDisposable
{
    private byte[]? _buffer;
    private int _length;
    private int _continuations;

    /// <summary>The stream whose block is being gathered, or 0 when none is.</summary>
    public int StreamId { get; private set; }

    /// <summary>Whether the block's HEADERS frame ended the stream.</summary>
    public bool EndStream { get; private set; }

    /// <summary>The block gathered so far.</summary>
    public ReadOnlySpan<byte> Bytes => _buffer.AsSpan(0, _length);

    /// <summary>Starts a block with a HEADERS frame's fragment that did not end it.</summary>
    public void Start(int streamId, bool endStream, ReadOnlySpan<byte> fragment)
    {
        StreamId = streamId;
        EndStream = endStream;
        _length = 0;
        _continuations = 0;
        Append(fragment);
    }

    /// <summary>Adds a CONTINUATION frame's fragment.</summary>
    /// <exception cref="Http2ConnectionException">The block takes too many frames or bytes (ENHANCE_YOUR_CALM).</exception>
    public void Continue(ReadOnlySpan<byte> fragment)
    {
        if (++_continuations > Http2Connection.MaxContinuationFrames)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm,
                $"A header block in more than {Http2Connection.MaxContinuationFrames} CONTINUATION frames ({_length} bytes so far).", "continuation_flood");
        }

        Append(fragment);
    }

    /// <summary>The block is complete (END_HEADERS): no block is open any more; the bytes stay until <see cref="Dispose"/>.</summary>
    public void End() => StreamId = 0;

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            _length = 0;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Append(ReadOnlySpan<byte> fragment)
    {
        var needed = _length + fragment.Length;
        if (needed > Http2Connection.MaxHeaderBlockBytes)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"A header block over {Http2Connection.MaxHeaderBlockBytes / 1024} KiB.", "header_block_too_large");
        }

        if (_buffer is null || _buffer.Length < needed)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 16 * 1024));
            if (_buffer is not null)
            {
                _buffer.AsSpan(0, _length).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = bigger;
        }

        fragment.CopyTo(_buffer.AsSpan(_length));
        _length = needed;
    }
}
