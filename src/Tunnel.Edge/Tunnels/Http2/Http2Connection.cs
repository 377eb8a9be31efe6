using System.Buffers;
using System.Buffers.Binary;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// An HTTP/2 client connection (RFC 9113) over a stream that is already connected: the tunnel's TLS
/// stream the origin dialed. One reader loop reads and dispatches frames; one writer loop sends
/// whatever frames every stream has queued since its last write as one write and one flush, so
/// concurrent requests share TLS records and syscalls. Neither loop holds a buffer while idle.
/// </summary>
internal sealed partial class Http2Connection : IDisposable
{
    // The connection's window is topped up when half of it was read by consumers, a stream's likewise.
    private const int InitialPeerWindow = 65535;

    // The most a header block may take on the wire before it is decoded. Larger than any response
    // under the decoded limit, so an oversized response fails its own stream while HPACK stays in step.
    private const int MaxHeaderBlockBytes = 1024 * 1024;

    /// <summary>
    /// The most bytes of frames queued for the origin, in the write buffer and in the write under way,
    /// before the reader stops reading frames and request bodies wait: an origin that stops reading its
    /// socket while it sends PINGs, SETTINGS or window for uploads cannot grow the edge's memory past
    /// this (plus one frame's reply). 1 MiB is Kestrel's default connection window: a healthy origin
    /// reads that much ahead, so uploads are never held by it.
    /// </summary>
    internal const int MaxQueuedWriteBytes = 1024 * 1024;

    // Request bodies stop queueing at half of that, so uploads alone never hold the reader: only
    // answers the origin does not take fill the rest.
    private const int MaxQueuedDataBytes = MaxQueuedWriteBytes / 2;

    /// <summary>
    /// The most control replies (PING and SETTINGS acknowledgements) queued and not yet handed to the
    /// socket. An origin that makes the edge answer faster than it reads the answers (CVE-2019-9512,
    /// CVE-2019-9515) is told GOAWAY ENHANCE_YOUR_CALM past this many, as nghttp2 does at its default
    /// max_outbound_ack of 1000; a healthy origin waits for its ACK, so it never has more than a few.
    /// </summary>
    internal const int MaxPendingControlReplies = 1000;

    private readonly Stream _stream;
    private readonly Http2ClientSettings _settings;
    private readonly TimeProvider _time;
    private readonly Dictionary<int, Http2Stream> _streams = [];
    private readonly Queue<TaskCompletionSource<bool>> _slotWaiters = new();
    private readonly List<Http2Stream> _connectionWindowWaiters = [];
    private readonly List<Http2Stream> _writeRoomWaiters = [];
    private readonly AsyncSignal _writerSignal;
    private readonly AsyncSignal _readerRoomSignal;
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _goAwayReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ITimer? _keepAliveTimer;
    private int _started;

    private byte[]? _writeBuffer;
    private int _writeLength;

    // Bytes of the write under way (handed to the stream, not yet flushed) and since when, or 0.
    private int _writingLength;
    private long _writeStartedTimestamp;
    private int _pendingControlReplies;
    private int _originFaultReported;
    private bool _closeAfterFlush;
    private bool _drainBeforeClose;
    private Exception? _abortError;
    private int _streamDisposed;

    private int _nextStreamId = 1;
    private int _activeStreams;
    // Until the origin's SETTINGS arrive, assume the smallest limit RFC 9113 (section 6.5.2) recommends a
    // server allow, 100: a burst sent before them would otherwise meet a lower limit as refusals.
    private int _peerMaxConcurrentStreams = StreamLimitFor(100);

    /// <summary>
    /// How many streams to keep open for a server that allows <paramref name="advertised"/>: a tenth fewer
    /// (at least one fewer). Kestrel counts a finished stream until its connection loop retires it, a
    /// moment after the stream's last frame went out, so a client that opens streams right up to the
    /// limit as others finish is refused (REFUSED_STREAM) in bursts; the margin absorbs that lag.
    /// </summary>
    internal static int StreamLimitFor(uint advertised) => advertised switch
    {
        0 => 0,
        1 => 1,
        _ => (int)Math.Min(advertised - Math.Max(1, advertised / 10), int.MaxValue),
    };
    private int _peerInitialWindow = InitialPeerWindow;
    private int _peerMaxFrameSize = Http2FrameHeader.DefaultMaxFrameSize;
    private bool _peerConnectProtocol;
    private long _connectionSendWindow = InitialPeerWindow;
    private int _connectionUnackedConsumed;
    private bool _goAway;
    private int _goAwayLastStreamId = int.MaxValue;

    private long _lastFrameTimestamp;
    private long _pingSentTimestamp;
    private bool _pingOutstanding;
    private long _pingPayload;

    public Http2Connection(Stream stream, Http2ClientSettings settings, TimeProvider time)
    {
        _stream = stream;
        _settings = settings;
        _time = time;
        _writerSignal = new AsyncSignal(Sync);
        _readerRoomSignal = new AsyncSignal(Sync);
        // No name or value is decoded past the response header limit: a longer one fails its stream anyway.
        _decoder = new HpackDecoder(maxStringLength: settings.MaxResponseHeaderBytes);
        _reader = new Http2FrameReader(stream, Http2FrameHeader.DefaultMaxFrameSize);
    }

    /// <summary>The one lock for the connection and all its streams.</summary>
    public object Sync { get; } = new();

    /// <summary>Completes when the origin sent GOAWAY: no new streams may start here.</summary>
    public Task GoAwayReceived => _goAwayReceived.Task;

    /// <summary>Whether a new request could start here now.</summary>
    public bool IsUsable => Volatile.Read(ref _abortError) is null && !Volatile.Read(ref _goAway);

    /// <summary>Streams open now.</summary>
    public int ActiveStreams
    {
        get
        {
            lock (Sync)
            {
                return _activeStreams;
            }
        }
    }

    private static void WriteSetting(Span<byte> destination, Http2Setting setting, uint value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)setting);
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], value);
    }

    /// <summary>
    /// Sends the preface and SETTINGS and starts both loops, on the first request: the tunnel's own
    /// registration exchange must be finished on the stream before HTTP/2 begins.
    /// </summary>
    private void EnsureStarted()
    {
        if (Volatile.Read(ref _started) != 0 || Interlocked.Exchange(ref _started, 1) != 0)
        {
            return;
        }

        _lastFrameTimestamp = _time.GetTimestamp();
        if (_settings.KeepAlivePingDelay != Timeout.InfiniteTimeSpan && _settings.KeepAlivePingDelay > TimeSpan.Zero)
        {
            // Checked a few times per delay and timeout, so a dead connection is found within a
            // fraction of a period after the timeout; the timer is per connection, not per request.
            var period = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(100).Ticks,
                Math.Min(_settings.KeepAlivePingDelay.Ticks, _settings.KeepAlivePingTimeout.Ticks) / 4));
            _keepAliveTimer = _time.CreateTimer(static state => ((Http2Connection)state!).OnKeepAliveTimer(), this, period, period);
        }

        lock (Sync)
        {
            var preface = Reserve(Http2FrameHeader.ClientPreface.Length + Http2FrameHeader.Size + (3 * 6) + Http2FrameHeader.Size + 4);
            Http2FrameHeader.ClientPreface.CopyTo(preface);
            var settingsFrame = preface[Http2FrameHeader.ClientPreface.Length..];
            Http2FrameHeader.Write(settingsFrame, 3 * 6, Http2FrameType.Settings, 0, 0);
            WriteSetting(settingsFrame[9..], Http2Setting.EnablePush, 0);
            WriteSetting(settingsFrame[15..], Http2Setting.InitialWindowSize, (uint)_settings.StreamWindowSize);
            WriteSetting(settingsFrame[21..], Http2Setting.MaxHeaderListSize, (uint)_settings.MaxResponseHeaderBytes);
            var windowUpdate = settingsFrame[27..];
            Http2FrameHeader.Write(windowUpdate, 4, Http2FrameType.WindowUpdate, 0, 0);
            BinaryPrimitives.WriteUInt32BigEndian(windowUpdate[9..], (uint)(_settings.ConnectionWindowSize - InitialPeerWindow));
            _connectionReceiveWindow = _settings.ConnectionWindowSize;
        }

        _ = WriteLoopAsync();
        _ = ReadLoopAsync();
    }

    /// <summary>Sends a request and returns once its final response headers arrived.</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        EnsureStarted();
        var extendedConnect = Http2RequestHeaders.ProtocolOf(request) is not null;
        if (extendedConnect)
        {
            // RFC 8441 section 3: only once the server's SETTINGS allowed it.
            await _settingsReceived.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!Volatile.Read(ref _peerConnectProtocol))
            {
                throw new HttpRequestException(HttpRequestError.ExtendedConnectNotSupported,
                    "The origin does not allow extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL), so the WebSocket cannot be opened through the tunnel.");
            }
        }

        var content = extendedConnect ? null : request.Content;
        for (var attempt = 1; ; attempt++)
        {
            var stream = new Http2Stream(this, request, extendedConnect);
            using (var block = Http2RequestHeaders.Encode(request, extendedConnect))
            {
                await OpenStreamAsync(stream, block, endStream: content is null && !extendedConnect, cancellationToken).ConfigureAwait(false);
            }

            if (content is not null)
            {
                stream.StartSendingBody(content, cancellationToken);
            }

            try
            {
                return await stream.ReadResponseHeadersAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex) when (content is null or ByteArrayContent && attempt < RefusedStreamAttempts && Http2Errors.IsRefusedStream(ex))
            {
                // Give the origin's loop a moment to retire its finished streams: 1, 2, 4, 8 ms.
                await Task.Delay(TimeSpan.FromMilliseconds(1 << (attempt - 1)), _time, cancellationToken).ConfigureAwait(false);

                // Kestrel counts a stream against MAX_CONCURRENT_STREAMS until its own loop has retired
                // it, a moment after the stream's last frame went out; a stream opened in that moment
                // is refused although the count here was within the limit. Nothing was processed, so
                // a request without a body, or with one held in memory (the forwarder's replayable
                // bodies), is sent again, as SocketsHttpHandler does. A streamed body is not: it may
                // have been read already; the caller sees the refusal (not processed) and decides.
            }
        }
    }

    // How many times a request without a body is opened when the origin refuses its stream.
    private const int RefusedStreamAttempts = 5;

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

    private static void CancelQuietly(CancellationTokenSource? cancellation)
    {
        if (cancellation is null)
        {
            return;
        }

        try
        {
            cancellation.Cancel();
        }
        catch (AggregateException)
        {
            // A callback of the content's threw; the stream is gone either way.
        }

        cancellation.Dispose();
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

    /// <summary>Tells <see cref="Http2ClientSettings.OriginFault"/>, once per connection.</summary>
    private void ReportOriginFault(string errorType, string message)
    {
        if (_settings.OriginFault is { } report && Interlocked.Exchange(ref _originFaultReported, 1) == 0)
        {
            report(errorType, message);
        }
    }

    private void DisposeStream()
    {
        if (Interlocked.Exchange(ref _streamDisposed, 1) == 0)
        {
            _keepAliveTimer?.Dispose();
            _stream.Dispose();
        }
    }

    /// <summary>Sends what is queued (a GOAWAY, say), then closes; every stream still open fails now.</summary>
    private void CloseAfterFlushLocked(Exception cause)
    {
        _closeAfterFlush = true;
        FailAllLocked(cause, out var bodies);
        _writerSignal.Set();
        foreach (var body in bodies)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => CancelQuietly((CancellationTokenSource)state!), body);
        }
    }

    /// <summary>The connection is dead: fail every stream, return the queued writes, close the stream.</summary>
    public void Abort(Exception cause)
    {
        List<CancellationTokenSource> bodies;
        lock (Sync)
        {
            FailAllLocked(cause, out bodies);
            _closeAfterFlush = false;
            if (_writeBuffer is { } pending)
            {
                _writeBuffer = null;
                _writeLength = 0;
                ArrayPool<byte>.Shared.Return(pending);
            }

            _writerSignal.Set();
            _readerRoomSignal.Set();
        }

        foreach (var body in bodies)
        {
            CancelQuietly(body);
        }

        DisposeStream();
    }

    private void FailAllLocked(Exception cause, out List<CancellationTokenSource> bodies)
    {
        bodies = [];
        if (_abortError is not null)
        {
            return;
        }

        _abortError = cause;
        var lost = Http2Errors.ConnectionLost(cause);
        foreach (var stream in _streams.Values)
        {
            stream.IsOpen = false;
            stream.SendClosed = stream.ReceiveClosed = true;
            stream.FailLocked(lost);
            if (stream.TakeBodyCancellationLocked() is { } body)
            {
                bodies.Add(body);
            }

            // The response is incomplete: its reader sees the failure rather than what was buffered.
            stream.DiscardDataLocked();
        }

        _streams.Clear();
        _connectionWindowWaiters.Clear();
        _writeRoomWaiters.Clear();
        var refused = Http2Errors.NotProcessed($"The tunnel connection is closed: {cause.Message}", cause);
        while (_slotWaiters.TryDequeue(out var waiter))
        {
            waiter.TrySetException(refused);
        }

        _settingsReceived.TrySetException(refused);
        _settingsReceived.Task.Exception?.Handle(static _ => true);
    }

    private void OnKeepAliveTimer()
    {
        Exception? dead = null;
        var stalled = false;
        lock (Sync)
        {
            if (_abortError is not null)
            {
                return;
            }

            var stall = _settings.KeepAlivePingDelay + _settings.KeepAlivePingTimeout;
            if (_writeStartedTimestamp != 0 && _time.GetElapsedTime(_writeStartedTimestamp) > stall)
            {
                // Frames may still be arriving, but the origin has not read what the edge wrote: with
                // its answers and requests stuck behind that write, the connection is as good as dead.
                dead = new IOException($"The origin has not read what the edge wrote for {stall.TotalSeconds:0.###} s.");
                stalled = true;
            }
            else
            {
                dead = CheckPingLocked();
            }
        }

        if (dead is not null)
        {
            if (stalled)
            {
                ReportOriginFault("write_stalled", dead.Message);
            }

            Abort(dead);
        }
    }

    /// <summary>Sends a PING after <see cref="Http2ClientSettings.KeepAlivePingDelay"/> of silence; returns why the connection is dead if it went unanswered.</summary>
    private IOException? CheckPingLocked()
    {
        var lastFrame = Volatile.Read(ref _lastFrameTimestamp);
        if (_pingOutstanding && lastFrame > _pingSentTimestamp)
        {
            // Any frame since the PING shows the origin is alive.
            _pingOutstanding = false;
        }

        if (_pingOutstanding)
        {
            if (_time.GetElapsedTime(_pingSentTimestamp) > _settings.KeepAlivePingTimeout)
            {
                return new IOException($"The origin did not answer a keepalive PING within {_settings.KeepAlivePingTimeout.TotalSeconds:0.###} s.");
            }
        }
        else if (_time.GetElapsedTime(lastFrame) > _settings.KeepAlivePingDelay)
        {
            var frame = Reserve(Http2FrameHeader.Size + 8);
            Http2FrameHeader.Write(frame, 8, Http2FrameType.Ping, 0, 0);
            BinaryPrimitives.WriteInt64BigEndian(frame[Http2FrameHeader.Size..], ++_pingPayload);
            _pingOutstanding = true;
            _pingSentTimestamp = _time.GetTimestamp();
        }

        return null;
    }

    public void Dispose() => Abort(new ObjectDisposedException(nameof(TunnelHttp2Handler), "The tunnel connection was closed by the edge."));
}
