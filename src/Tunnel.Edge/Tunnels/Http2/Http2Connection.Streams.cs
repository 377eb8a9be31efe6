namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>The stream table: slots within MAX_CONCURRENT_STREAMS, opening, resetting and retiring streams.</summary>
internal sealed partial class Http2Connection
{
    /// <summary>Takes a stream slot (waiting while MAX_CONCURRENT_STREAMS are open), then queues HEADERS.</summary>
    private async ValueTask OpenStreamAsync(Http2Stream stream, HpackEncoder block, bool endStream, CancellationToken cancellationToken)
    {
        TaskCompletionSource<bool>? waiter = null;
        lock (Sync)
        {
            ThrowIfNotOpenLocked();
            if (_activeStreams < _peerMaxConcurrentStreams && _slotWaiters.Count == 0)
            {
                _activeStreams++;
                StartStreamLocked(stream, block, endStream);
                return;
            }

            waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _slotWaiters.Enqueue(waiter);
        }

        // A waiter woken with true owns a slot (counted for it by whoever freed it); one the wait bound
        // ends first is left in the queue, and the next freed slot passes over it.
        using (cancellationToken.UnsafeRegister(static state => ((TaskCompletionSource<bool>)state!).TrySetCanceled(), waiter))
        using (_settings.StreamWaitTimeout == Timeout.InfiniteTimeSpan ? null
            : _time.CreateTimer(static state => ((TaskCompletionSource<bool>)state!).TrySetException(new NoStreamFreeException()), waiter, _settings.StreamWaitTimeout, Timeout.InfiniteTimeSpan))
        {
            try
            {
                await waiter.Task.ConfigureAwait(false);
            }
            catch (TaskCanceledException)
            {
                throw new OperationCanceledException(cancellationToken);
            }
            catch (NoStreamFreeException)
            {
                throw Http2Errors.NoStreamFree(_settings.StreamWaitTimeout);
            }
        }

        lock (Sync)
        {
            if (_abortError is not null || _goAway)
            {
                ReleaseSlotLocked();
                ThrowIfNotOpenLocked();
            }

            StartStreamLocked(stream, block, endStream);
        }
    }

    private void ThrowIfNotOpenLocked()
    {
        if (_abortError is { } error)
        {
            throw Http2Errors.NotProcessed($"The tunnel connection is closed: {error.Message}", error);
        }

        if (_goAway)
        {
            throw Http2Errors.NotProcessed("The origin is closing the tunnel connection (GOAWAY); the request was not sent.");
        }
    }

    private void StartStreamLocked(Http2Stream stream, HpackEncoder block, bool endStream)
    {
        var id = _nextStreamId;
        _nextStreamId += 2;
        stream.Id = id;
        stream.SendWindow = _peerInitialWindow;
        stream.ReceiveWindow = _settings.StreamWindowSize;
        stream.SendClosed = endStream;
        stream.IsOpen = true;
        _streams.Add(id, stream);

        // HEADERS then CONTINUATIONs, each within the origin's MAX_FRAME_SIZE; nothing may come between them.
        var header = block.Written;
        var first = true;
        do
        {
            var length = Math.Min(header.Length, _peerMaxFrameSize);
            var flags = (byte)(length == header.Length ? Http2Flags.EndHeaders : 0);
            if (first && endStream)
            {
                flags |= Http2Flags.EndStream;
            }

            var frame = Reserve(Http2FrameHeader.Size + length);
            Http2FrameHeader.Write(frame, length, first ? Http2FrameType.Headers : Http2FrameType.Continuation, flags, id);
            header[..length].CopyTo(frame[Http2FrameHeader.Size..]);
            header = header[length..];
            first = false;
        }
        while (!header.IsEmpty);
    }

    /// <summary>Frees a slot for the next queued request, handing it over directly; or counts it free.</summary>
    private void ReleaseSlotLocked()
    {
        while (_slotWaiters.TryDequeue(out var waiter))
        {
            if (waiter.TrySetResult(true))
            {
                return;
            }
        }

        _activeStreams--;
    }

    /// <summary>
    /// Resets a stream from this end (cancelled, disposed early, its content failed): RST_STREAM unless it
    /// is already closed both ways, its unread bytes credited back, the request body stopped.
    /// </summary>
    public void ResetStream(Http2Stream stream, Http2ErrorCode code, Exception reason)
    {
        CancellationTokenSource? body;
        lock (Sync)
        {
            body = stream.TakeBodyCancellationLocked();
            if (stream.IsOpen)
            {
                if (!(stream.ReceiveClosed && stream.SendClosed))
                {
                    WriteRstStreamLocked(stream.Id, code);
                }

                RemoveStreamLocked(stream);
            }

            // A response the origin already completed stays readable when only the request side is
            // stopped (its content ended late or failed); disposing it drops what is left.
            var responseComplete = stream.ReceiveClosed && stream.Failure is null && stream.Response is not null;
            stream.SendClosed = stream.ReceiveClosed = true;
            if (!responseComplete || reason is ObjectDisposedException)
            {
                stream.FailLocked(reason);
                CreditConnectionLocked(stream.DiscardDataLocked());
            }
        }

        CancelQuietly(body);
    }

    /// <summary>A stream error (RFC 9113 section 5.4.2): RST_STREAM, and the request fails with <paramref name="message"/>.</summary>
    private void StreamErrorLocked(Http2Stream stream, Http2ErrorCode code, string message, HttpRequestError error = HttpRequestError.InvalidResponse)
    {
        var body = stream.TakeBodyCancellationLocked();
        if (stream.IsOpen)
        {
            WriteRstStreamLocked(stream.Id, code);
            RemoveStreamLocked(stream);
        }

        stream.SendClosed = stream.ReceiveClosed = true;
        stream.FailLocked(new HttpRequestException(error, message));
        CreditConnectionLocked(stream.DiscardDataLocked());
        if (body is not null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => CancelQuietly((CancellationTokenSource)state!), body);
        }
    }

    /// <summary>Removes a stream closed both ways from the table.</summary>
    private void CloseIfDoneLocked(Http2Stream stream)
    {
        if (stream.IsOpen && stream.SendClosed && stream.ReceiveClosed)
        {
            RemoveStreamLocked(stream);
        }
    }

    private void RemoveStreamLocked(Http2Stream stream)
    {
        if (!stream.IsOpen)
        {
            return;
        }

        stream.IsOpen = false;
        _streams.Remove(stream.Id);
        _connectionWindowWaiters.Remove(stream);
        _writeRoomWaiters.Remove(stream);
        ReleaseSlotLocked();
        if (_goAway && _streams.Count == 0)
        {
            // Every stream the origin took has finished: close, as it asked.
            CloseAfterFlushLocked(new IOException("The origin closed the tunnel connection (GOAWAY) and its last stream finished."));
        }
    }

    /// <summary>
    /// Whether a stream was never opened (RFC 9113 section 5.1, idle): this end opens the odd ones in
    /// order, and an even one would need a PUSH_PROMISE, which this end does not allow.
    /// </summary>
    private bool IsIdleStreamLocked(int streamId) => streamId >= _nextStreamId || (streamId & 1) == 0;

    private static Http2ConnectionException IdleStreamError(Http2FrameType type, int streamId) =>
        new(Http2ErrorCode.ProtocolError, $"{type} on stream {streamId}, which this end never opened.", "idle_stream");
}
