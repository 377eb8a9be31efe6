using System.Buffers;
using System.Buffers.Binary;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// The write side: frames are queued in one buffer under the lock, and one writer loop sends what
/// was queued since its last write as one write and one flush.
/// </summary>
internal sealed partial class Http2Connection
{
    /// <summary>Space for <paramref name="length"/> bytes of frames in the write buffer; wakes the writer.</summary>
    private Span<byte> Reserve(int length)
    {
        if (_writeBuffer is null)
        {
            _writeBuffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 16 * 1024));
            _writeLength = 0;
        }
        else if (_writeBuffer.Length - _writeLength < length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_writeBuffer.Length * 2, _writeLength + length));
            _writeBuffer.AsSpan(0, _writeLength).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_writeBuffer);
            _writeBuffer = bigger;
        }

        var span = _writeBuffer.AsSpan(_writeLength, length);
        _writeLength += length;
        _writerSignal.Set();
        return span;
    }

    /// <summary>
    /// Writes everything queued since the last write as one write and one flush (one TLS record while
    /// under 16 KiB, one syscall), then waits for more. The buffer goes back to the pool after each write.
    /// </summary>
    private async Task WriteLoopAsync()
    {
        try
        {
            while (true)
            {
                byte[]? buffer = null;
                var length = 0;
                ValueTask wait = default;
                var batch = false;
                lock (Sync)
                {
                    // Other requests in flight besides the anchor and at most one more: frames from them
                    // are likely on their way, worth gathering into this write.
                    batch = _streams.Count > 2;
                    buffer = TakeWriteLocked(out length);
                    if (buffer is null && _abortError is not null)
                    {
                        if (_writeBuffer is { } unsent)
                        {
                            _writeBuffer = null;
                            _writeLength = 0;
                            ArrayPool<byte>.Shared.Return(unsent);
                        }

                        _readerRoomSignal.Set();
                        break;
                    }

                    if (buffer is null)
                    {
                        wait = _writerSignal.WaitAsync(CancellationToken.None);
                    }
                }

                if (buffer is null)
                {
                    await wait.ConfigureAwait(false);

                    // Woken by the first frame queued while other requests are in flight: go to the back
                    // of the thread pool's queue once, so requests already queued there add their frames
                    // to this same write. With none in flight the frame goes out at once: the yield
                    // would only add a thread hop to a lone request's latency.
                    if (batch)
                    {
                        await Task.Yield();
                    }

                    continue;
                }

                try
                {
                    await _stream.WriteAsync(buffer.AsMemory(0, length)).ConfigureAwait(false);
                    await _stream.FlushAsync().ConfigureAwait(false);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (Exception ex)
        {
            Abort(ex);
        }

        // After a protocol error the reader drains the origin's bytes and closes the stream itself.
        if (!Volatile.Read(ref _drainBeforeClose))
        {
            DisposeStream();
        }
    }

    /// <summary>
    /// The last write, if any, is done: takes everything queued since as the next one (unless the
    /// connection is closing without a flush), and wakes whoever waited for room.
    /// </summary>
    private byte[]? TakeWriteLocked(out int length)
    {
        var wrote = _writingLength > 0;
        byte[]? buffer = null;
        length = 0;
        _writingLength = 0;
        _writeStartedTimestamp = 0;
        if (_writeLength > 0 && (_abortError is null || _closeAfterFlush))
        {
            buffer = _writeBuffer;
            length = _writeLength;
            _writeBuffer = null;
            _writeLength = 0;
            _writingLength = length;
            _writeStartedTimestamp = _time.GetTimestamp();
            _pendingControlReplies = 0;
        }

        if (wrote)
        {
            WakeWriteRoomWaitersLocked();
        }

        return buffer;
    }

    /// <summary>Wakes the reader and the request bodies held by <see cref="MaxQueuedWriteBytes"/> once there is room again.</summary>
    private void WakeWriteRoomWaitersLocked()
    {
        var queued = _writeLength + _writingLength;
        if (queued < MaxQueuedWriteBytes)
        {
            _readerRoomSignal.Set();
        }

        if (queued < MaxQueuedDataBytes && _writeRoomWaiters.Count > 0)
        {
            foreach (var waiting in _writeRoomWaiters)
            {
                waiting.WindowSignal.Set();
            }

            _writeRoomWaiters.Clear();
        }
    }

    /// <summary>
    /// Holds the reader while more than <see cref="MaxQueuedWriteBytes"/> wait to be written: what it
    /// reads next may need an answer, and the origin is not taking the answers it has.
    /// </summary>
    private ValueTask WaitForWriteRoomAsync()
    {
        lock (Sync)
        {
            if (_abortError is not null || _writeLength + _writingLength < MaxQueuedWriteBytes)
            {
                return ValueTask.CompletedTask;
            }

            return _readerRoomSignal.WaitAsync(CancellationToken.None);
        }
    }

    private void WriteRstStreamLocked(int streamId, Http2ErrorCode code)
    {
        if (_abortError is not null)
        {
            return;
        }

        var frame = Reserve(Http2FrameHeader.Size + 4);
        Http2FrameHeader.Write(frame, 4, Http2FrameType.RstStream, 0, streamId);
        BinaryPrimitives.WriteUInt32BigEndian(frame[Http2FrameHeader.Size..], (uint)code);
    }

    private void WriteWindowUpdateLocked(int streamId, int increment)
    {
        if (_abortError is not null || increment <= 0)
        {
            return;
        }

        var frame = Reserve(Http2FrameHeader.Size + 4);
        Http2FrameHeader.Write(frame, 4, Http2FrameType.WindowUpdate, 0, streamId);
        BinaryPrimitives.WriteUInt32BigEndian(frame[Http2FrameHeader.Size..], (uint)increment);
    }
}
