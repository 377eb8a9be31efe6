using System.Buffers.Binary;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// Flow control both ways: request bodies sent as DATA within the origin's windows and the write
/// room, response bytes granted back as WINDOW_UPDATE once consumers read them.
/// </summary>
internal sealed partial class Http2Connection
{
    /// <summary>Queues request body bytes as DATA frames, waiting for window as needed.</summary>
    public async ValueTask WriteDataAsync(Http2Stream stream, ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            ValueTask wait;
            lock (Sync)
            {
                if (stream.Failure is { } failure)
                {
                    throw failure as OperationCanceledException ?? (Exception)new IOException($"The request stream was closed: {failure.Message}", failure);
                }

                if (stream.SendClosed)
                {
                    throw new IOException("The request stream was already ended.");
                }

                if (_abortError is { } error)
                {
                    throw new IOException($"The tunnel connection is closed: {error.Message}", error);
                }

                var window = (int)Math.Min(Math.Min(stream.SendWindow, _connectionSendWindow), _peerMaxFrameSize);
                var room = _writeLength + _writingLength < MaxQueuedDataBytes;
                if (window > 0 && room)
                {
                    var length = Math.Min(window, buffer.Length);
                    var frame = Reserve(Http2FrameHeader.Size + length);
                    Http2FrameHeader.Write(frame, length, Http2FrameType.Data, 0, stream.Id);
                    buffer.Span[..length].CopyTo(frame[Http2FrameHeader.Size..]);
                    buffer = buffer[length..];
                    stream.SendWindow -= length;
                    _connectionSendWindow -= length;
                    continue;
                }

                if (!room)
                {
                    // The origin is not reading what is queued already: wait until it has.
                    _writeRoomWaiters.Add(stream);
                }
                else if (_connectionSendWindow <= 0)
                {
                    _connectionWindowWaiters.Add(stream);
                }

                wait = stream.WindowSignal.WaitAsync(cancellationToken);
            }

            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>The request content is complete: END_STREAM.</summary>
    public void EndRequestBody(Http2Stream stream)
    {
        lock (Sync)
        {
            if (stream.SendClosed || stream.Failure is not null || _abortError is not null)
            {
                return;
            }

            var frame = Reserve(Http2FrameHeader.Size);
            Http2FrameHeader.Write(frame, 0, Http2FrameType.Data, Http2Flags.EndStream, stream.Id);
            stream.SendClosed = true;
            stream.TakeBodyCancellationLocked()?.Dispose();
            CloseIfDoneLocked(stream);
        }
    }

    private void OnWindowUpdate(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.Length != 4)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "A WINDOW_UPDATE frame that is not 4 bytes.");
        }

        var increment = (int)(BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7FFFFFFF);
        lock (Sync)
        {
            if (header.StreamId == 0)
            {
                if (increment == 0)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A WINDOW_UPDATE of 0 for the connection.");
                }

                _connectionSendWindow += increment;
                if (_connectionSendWindow > Http2FrameHeader.MaxWindowSize)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "The connection's send window above 2^31-1.");
                }

                foreach (var waiting in _connectionWindowWaiters)
                {
                    waiting.WindowSignal.Set();
                }

                _connectionWindowWaiters.Clear();
                return;
            }

            if (!_streams.TryGetValue(header.StreamId, out var stream))
            {
                if (IsIdleStreamLocked(header.StreamId))
                {
                    throw IdleStreamError(header.Type, header.StreamId);
                }

                // RFC 9113 section 6.9: window for a stream closed a moment ago is not an error.
                CountIdleFrame(header.Type);
                return;
            }

            if (increment == 0)
            {
                StreamErrorLocked(stream, Http2ErrorCode.ProtocolError, "The origin sent a WINDOW_UPDATE of 0.");
                return;
            }

            stream.SendWindow += increment;
            if (stream.SendWindow > Http2FrameHeader.MaxWindowSize)
            {
                StreamErrorLocked(stream, Http2ErrorCode.FlowControlError, "The origin's WINDOW_UPDATE overflows the stream's window.");
                return;
            }

            stream.WindowSignal.Set();
        }
    }

    /// <summary>A consumer read <paramref name="count"/> bytes of a stream: grant them again when half a window is read.</summary>
    public void OnConsumedLocked(Http2Stream stream, int count)
    {
        var credit = stream.TakeWindowCreditLocked(count, _settings.StreamWindowSize);
        if (credit > 0)
        {
            stream.ReceiveWindow += credit;
            WriteWindowUpdateLocked(stream.Id, credit);
        }

        CreditConnectionLocked(count);
    }

    private void CreditConnectionLocked(int count)
    {
        _connectionUnackedConsumed += count;
        if (_connectionUnackedConsumed >= _settings.ConnectionWindowSize / 2)
        {
            _connectionReceiveWindow += _connectionUnackedConsumed;
            WriteWindowUpdateLocked(0, _connectionUnackedConsumed);
            _connectionUnackedConsumed = 0;
        }
    }
}
