using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>The reader loop: frames from the origin, dispatched by type; connection errors.</summary>
internal sealed partial class Http2Connection
{
    private async Task ReadLoopAsync()
    {
        Exception cause;
        var goAwaySent = false;
        try
        {
            while (true)
            {
                if (Volatile.Read(ref _writeLength) + Volatile.Read(ref _writingLength) >= MaxQueuedWriteBytes)
                {
                    await WaitForWriteRoomAsync().ConfigureAwait(false);
                }

                if (!await _reader.ReadFrameAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    break;
                }

                Volatile.Write(ref _lastFrameTimestamp, _time.GetTimestamp());
                ProcessFrame(_reader.Header, _reader.Payload);
            }

            cause = new IOException("The origin closed the tunnel connection.");
        }
        catch (Http2ConnectionException ex)
        {
            goAwaySent = ConnectionError(ex.Code, ex.Message);
            ReportOriginFault(ex.ErrorType, ex.Message);
            cause = ex;
        }
        catch (HpackException ex)
        {
            goAwaySent = ConnectionError(Http2ErrorCode.CompressionError, ex.Message);
            ReportOriginFault(Http2Errors.TypeOf(Http2ErrorCode.CompressionError), ex.Message);
            cause = ex;
        }
        catch (Exception ex)
        {
            cause = ex;
        }
        finally
        {
            _reader.Dispose();
            _headerBlock.Dispose();
        }

        if (goAwaySent)
        {
            // The writer sends the GOAWAY; if the origin does not take it within the grace, close anyway.
            _ = Task.Delay(GoAwayGrace, _time).ContinueWith(static (_, state) => ((Http2Connection)state!).Abort(new IOException("The tunnel connection was closed after a protocol error.")), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            if (!await DrainAsync().ConfigureAwait(false))
            {
                // Still sending: left unread until the grace ends, so it has that long to read the GOAWAY.
                return;
            }
        }

        Abort(cause);
    }

    /// <summary>
    /// Reads and drops what the origin still sends after a GOAWAY for its error, until it closes or the
    /// grace ends: a socket closed with bytes unread is reset (TCP RST), and the reset would throw the
    /// GOAWAY away on the origin's side before it had read why. Returns <c>false</c> once
    /// <see cref="MaxQueuedWriteBytes"/> were dropped and the origin is still sending: no more of its
    /// flood is read.
    /// </summary>
    private async Task<bool> DrainAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            for (var drained = 0; drained < MaxQueuedWriteBytes;)
            {
                var read = await _stream.ReadAsync(buffer).ConfigureAwait(false);
                if (read == 0)
                {
                    return true;
                }

                drained += read;
            }

            return false;
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or NotSupportedException)
        {
            // Closed by the grace timer, or reset by the origin: either way the drain is over.
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A connection error (RFC 9113 section 5.4.1): GOAWAY with the code, then close; every stream fails.</summary>
    private bool ConnectionError(Http2ErrorCode code, string message)
    {
        lock (Sync)
        {
            if (_abortError is not null)
            {
                return false;
            }

            var debug = Encoding.ASCII.GetBytes(message.Length > 200 ? message[..200] : message);
            var frame = Reserve(Http2FrameHeader.Size + 8 + debug.Length);
            Http2FrameHeader.Write(frame, 8 + debug.Length, Http2FrameType.GoAway, 0, 0);
            BinaryPrimitives.WriteUInt32BigEndian(frame[9..], 0);
            BinaryPrimitives.WriteUInt32BigEndian(frame[13..], (uint)code);
            debug.CopyTo(frame[17..]);
            _drainBeforeClose = true;
            CloseAfterFlushLocked(new Http2ConnectionException(code, $"The origin broke the HTTP/2 protocol ({code}): {message}"));
            return true;
        }
    }

    private void ProcessFrame(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock.StreamId != 0 && header.Type != Http2FrameType.Continuation)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"A {header.Type} frame came between a header block's frames.");
        }

        switch (header.Type)
        {
            case Http2FrameType.Data:
                OnData(header, payload);
                break;
            case Http2FrameType.Headers:
                OnHeaders(header, payload);
                break;
            case Http2FrameType.Continuation:
                OnContinuation(header, payload);
                break;
            case Http2FrameType.RstStream:
                OnRstStream(header, payload);
                break;
            case Http2FrameType.Settings:
                OnSettings(header, payload);
                break;
            case Http2FrameType.Ping:
                OnPing(header, payload);
                break;
            case Http2FrameType.GoAway:
                OnGoAway(header, payload);
                break;
            case Http2FrameType.WindowUpdate:
                OnWindowUpdate(header, payload);
                break;
            case Http2FrameType.PushPromise:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "The origin sent PUSH_PROMISE although push is disabled.", "push_promise");
            case Http2FrameType.Priority:
                if (header.StreamId == 0 || header.Length != 5)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A malformed PRIORITY frame.");
                }

                CountIdleFrame(header.Type);
                break;
            default:
                // Unknown frame types are ignored (RFC 9113 section 4.1).
                CountIdleFrame(header.Type);
                break;
        }
    }

    /// <summary>Counts a frame that changed nothing; past <see cref="MaxIdleFramesPerSecond"/> the origin is flooding.</summary>
    private void CountIdleFrame(Http2FrameType type)
    {
        if (++_idleFrames < MaxIdleFramesPerSecond)
        {
            return;
        }

        var now = _time.GetTimestamp();
        if (_time.GetElapsedTime(_idleFramesSince, now) < TimeSpan.FromSeconds(1))
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm,
                $"The origin sent {MaxIdleFramesPerSecond} frames that change nothing within a second (the last a {type}).", "frame_flood");
        }

        _idleFrames = 0;
        _idleFramesSince = now;
    }

    private static ReadOnlySpan<byte> RemovePadding(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (!header.HasFlag(Http2Flags.Padded))
        {
            return payload;
        }

        if (payload.IsEmpty || payload[0] >= payload.Length)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"A {header.Type} frame's padding is as long as the frame.");
        }

        return payload[1..^payload[0]];
    }

    private void OnData(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A DATA frame on stream 0.");
        }

        var data = RemovePadding(header, payload);
        lock (Sync)
        {
            _connectionReceiveWindow -= header.Length;
            if (_connectionReceiveWindow < 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "The origin sent more DATA than the connection window allows.");
            }

            if (!_streams.TryGetValue(header.StreamId, out var stream) || stream.ReceiveClosed)
            {
                if (IsIdleStreamLocked(header.StreamId))
                {
                    throw IdleStreamError(header.Type, header.StreamId);
                }

                // A stream this end already reset: its bytes are dropped, the connection's window kept whole.
                CountIdleFrame(header.Type);
                CreditConnectionLocked(header.Length);
                return;
            }

            if (header.Length == 0 && !header.HasFlag(Http2Flags.EndStream))
            {
                // Nothing to read and nothing ended (CVE-2019-9518's empty frames): no reader is woken.
                CountIdleFrame(header.Type);
                return;
            }

            if (stream.Response is null)
            {
                CreditConnectionLocked(header.Length);
                StreamErrorLocked(stream, Http2ErrorCode.ProtocolError, "The origin sent DATA before the response headers.");
                return;
            }

            stream.ReceiveWindow -= header.Length;
            if (stream.ReceiveWindow < 0)
            {
                CreditConnectionLocked(header.Length);
                StreamErrorLocked(stream, Http2ErrorCode.FlowControlError, "The origin sent more DATA than the stream window allows.");
                return;
            }

            stream.AppendDataLocked(data);

            // Padding counts against the windows but is nothing to read: granted back at once.
            var padding = header.Length - data.Length;
            if (padding > 0)
            {
                OnConsumedLocked(stream, padding);
            }

            if (header.HasFlag(Http2Flags.EndStream))
            {
                stream.ReceiveClosed = true;
                CloseIfDoneLocked(stream);
            }

            stream.WakeReaderLocked();
        }
    }

    private void OnRstStream(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0 || header.Length != 4)
        {
            throw new Http2ConnectionException(header.StreamId == 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "A malformed RST_STREAM frame.");
        }

        var code = (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(payload);
        CancellationTokenSource? body;
        lock (Sync)
        {
            if (!_streams.TryGetValue(header.StreamId, out var stream))
            {
                if (IsIdleStreamLocked(header.StreamId))
                {
                    throw IdleStreamError(header.Type, header.StreamId);
                }

                CountIdleFrame(header.Type);
                return;
            }

            body = stream.TakeBodyCancellationLocked();
            RemoveStreamLocked(stream);
            if (code == Http2ErrorCode.NoError && stream.ReceiveClosed)
            {
                // RFC 9113 section 8.1: the response is complete and the origin wants no more of the request.
                stream.SendClosed = true;
            }
            else
            {
                stream.SendClosed = stream.ReceiveClosed = true;
                stream.FailLocked(code == Http2ErrorCode.RefusedStream
                    ? Http2Errors.Refused()
                    : new HttpProtocolException((long)code, $"The origin reset the stream ({code}).", null));
                CreditConnectionLocked(stream.DiscardDataLocked());
            }
        }

        if (body is not null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => CancelQuietly((CancellationTokenSource)state!), body);
        }
    }

    private void OnPing(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId != 0 || header.Length != 8)
        {
            throw new Http2ConnectionException(header.StreamId != 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "A malformed PING frame.");
        }

        lock (Sync)
        {
            if (header.HasFlag(Http2Flags.Ack))
            {
                if (!_pingOutstanding)
                {
                    CountIdleFrame(header.Type);
                }

                _pingOutstanding = false;
                return;
            }

            if (_abortError is not null)
            {
                // Frames still buffered after the connection died: nothing more is written.
                return;
            }

            CountControlReplyLocked(header.Type);
            var frame = Reserve(Http2FrameHeader.Size + 8);
            Http2FrameHeader.Write(frame, 8, Http2FrameType.Ping, Http2Flags.Ack, 0);
            payload.CopyTo(frame[Http2FrameHeader.Size..]);
        }
    }

    /// <summary>One more PING or SETTINGS acknowledgement queued; past <see cref="MaxPendingControlReplies"/> the origin is not reading them.</summary>
    private void CountControlReplyLocked(Http2FrameType type)
    {
        if (++_pendingControlReplies > MaxPendingControlReplies)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm,
                $"The origin asked for more than {MaxPendingControlReplies} {type} acknowledgements without reading them.", "control_flood");
        }
    }

    private void OnGoAway(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId != 0 || header.Length < 8)
        {
            throw new Http2ConnectionException(header.StreamId != 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "A malformed GOAWAY frame.");
        }

        var lastStreamId = (int)(BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7FFFFFFF);
        var code = (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(payload[4..]);
        List<CancellationTokenSource>? bodies = null;
        lock (Sync)
        {
            _goAway = true;
            _goAwayLastStreamId = Math.Min(_goAwayLastStreamId, lastStreamId);
            var refused = Http2Errors.NotProcessed($"The origin is closing the tunnel connection (GOAWAY {code}) and did not process the request.");
            List<Http2Stream>? unprocessed = null;
            foreach (var stream in _streams.Values)
            {
                if (stream.Id > _goAwayLastStreamId)
                {
                    (unprocessed ??= []).Add(stream);
                }
            }

            while (_slotWaiters.TryDequeue(out var waiter))
            {
                waiter.TrySetException(refused);
            }

            if (unprocessed is not null)
            {
                foreach (var stream in unprocessed)
                {
                    if (stream.TakeBodyCancellationLocked() is { } body)
                    {
                        (bodies ??= []).Add(body);
                    }

                    stream.SendClosed = stream.ReceiveClosed = true;
                    stream.FailLocked(refused);
                    RemoveStreamLocked(stream);
                }
            }

            if (_streams.Count == 0 && _abortError is null)
            {
                CloseAfterFlushLocked(new IOException($"The origin closed the tunnel connection (GOAWAY {code})."));
            }
        }

        _goAwayReceived.TrySetResult();
        if (bodies is not null)
        {
            foreach (var body in bodies)
            {
                CancelQuietly(body);
            }
        }
    }
}
