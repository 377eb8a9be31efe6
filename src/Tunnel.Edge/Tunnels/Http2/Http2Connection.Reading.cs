using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>The reader loop: frames from the origin, dispatched by type.</summary>
internal sealed partial class Http2Connection : IHpackHeaderSink
{
    private readonly HpackDecoder _decoder;
    private readonly Http2FrameReader _reader;
    private long _connectionReceiveWindow;

    // A header block split over HEADERS and CONTINUATION frames is gathered here (rented) until END_HEADERS.
    private byte[]? _headerBlock;
    private int _headerBlockLength;
    private int _headerBlockStreamId;
    private bool _headerBlockEndStream;
    private int _headerBlockContinuations;

    /// <summary>
    /// The most CONTINUATION frames one header block may take: a block of <see cref="MaxHeaderBlockBytes"/>
    /// in frames of the size this end allows. Empty CONTINUATIONs grow no buffer, so without a count an
    /// endless chain of them (CVE-2024-27316) would hold the reader for ever; nghttp2 allows 8.
    /// </summary>
    internal const int MaxContinuationFrames = MaxHeaderBlockBytes / Http2FrameHeader.DefaultMaxFrameSize;

    /// <summary>
    /// Frames that change nothing (PRIORITY, unknown types, empty DATA, resets and window for streams
    /// already closed, acknowledgements nobody asked for) allowed per second. A healthy origin sends a
    /// few after a stream the edge reset; RFC 9113 section 10.5 lets an endpoint end a flood of them
    /// with ENHANCE_YOUR_CALM, since each costs the edge work and the origin nothing.
    /// </summary>
    internal const int MaxIdleFramesPerSecond = 1000;

    private bool _settingsAcknowledged;
    private int _idleFrames;
    private long _idleFramesSince;

    // The block being decoded and where its fields go.
    private Http2Stream? _sinkStream;
    private HttpResponseMessage? _sinkResponse;
    private bool _sinkTrailers;
    private int _sinkStatus;
    private int _sinkBytes;
    private bool _sinkRegularSeen;
    private string? _sinkMalformed;

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
            ReturnHeaderBlock();
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

    // How long a GOAWAY after a protocol error may take to go out before the connection is cut.
    private static readonly TimeSpan GoAwayGrace = TimeSpan.FromSeconds(1);

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
        if (_headerBlockStreamId != 0 && header.Type != Http2FrameType.Continuation)
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

    /// <summary>
    /// Whether a stream was never opened (RFC 9113 section 5.1, idle): this end opens the odd ones in
    /// order, and an even one would need a PUSH_PROMISE, which this end does not allow.
    /// </summary>
    private bool IsIdleStreamLocked(int streamId) => streamId >= _nextStreamId || (streamId & 1) == 0;

    private static Http2ConnectionException IdleStreamError(Http2FrameType type, int streamId) =>
        new(Http2ErrorCode.ProtocolError, $"{type} on stream {streamId}, which this end never opened.", "idle_stream");

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

    private void OnHeaders(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A HEADERS frame on stream 0.");
        }

        var fragment = RemovePadding(header, payload);
        if (header.HasFlag(Http2Flags.Priority))
        {
            if (fragment.Length < 5)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "A HEADERS frame too short for its priority fields.");
            }

            fragment = fragment[5..];
        }

        var endStream = header.HasFlag(Http2Flags.EndStream);
        if (header.HasFlag(Http2Flags.EndHeaders))
        {
            ProcessHeaderBlock(header.StreamId, fragment, endStream);
            return;
        }

        _headerBlockStreamId = header.StreamId;
        _headerBlockEndStream = endStream;
        _headerBlockLength = 0;
        _headerBlockContinuations = 0;
        AppendHeaderBlock(fragment);
    }

    private void OnContinuation(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_headerBlockStreamId == 0 || header.StreamId != _headerBlockStreamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A CONTINUATION frame that continues no header block.");
        }

        if (++_headerBlockContinuations > MaxContinuationFrames)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm,
                $"A header block in more than {MaxContinuationFrames} CONTINUATION frames ({_headerBlockLength} bytes so far).", "continuation_flood");
        }

        AppendHeaderBlock(payload);
        if (header.HasFlag(Http2Flags.EndHeaders))
        {
            var streamId = _headerBlockStreamId;
            _headerBlockStreamId = 0;
            try
            {
                ProcessHeaderBlock(streamId, _headerBlock.AsSpan(0, _headerBlockLength), _headerBlockEndStream);
            }
            finally
            {
                ReturnHeaderBlock();
            }
        }
    }

    private void AppendHeaderBlock(ReadOnlySpan<byte> fragment)
    {
        var needed = _headerBlockLength + fragment.Length;
        if (needed > MaxHeaderBlockBytes)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"A header block over {MaxHeaderBlockBytes / 1024} KiB.", "header_block_too_large");
        }

        if (_headerBlock is null || _headerBlock.Length < needed)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 16 * 1024));
            if (_headerBlock is not null)
            {
                _headerBlock.AsSpan(0, _headerBlockLength).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_headerBlock);
            }

            _headerBlock = bigger;
        }

        fragment.CopyTo(_headerBlock.AsSpan(_headerBlockLength));
        _headerBlockLength = needed;
    }

    private void ReturnHeaderBlock()
    {
        if (_headerBlock is { } block)
        {
            _headerBlock = null;
            _headerBlockLength = 0;
            ArrayPool<byte>.Shared.Return(block);
        }
    }

    private void ProcessHeaderBlock(int streamId, ReadOnlySpan<byte> block, bool endStream)
    {
        Http2Stream? stream;
        lock (Sync)
        {
            if (!_streams.TryGetValue(streamId, out stream) || stream.ReceiveClosed)
            {
                if (IsIdleStreamLocked(streamId))
                {
                    throw IdleStreamError(Http2FrameType.Headers, streamId);
                }

                stream = null;
            }
        }

        // Decoded outside the lock: only this loop touches the decoder, and the response is published below.
        _sinkStream = stream;
        _sinkTrailers = stream?.Response is not null;
        _sinkResponse = stream?.Response;
        _sinkStatus = -1;
        _sinkBytes = 0;
        _sinkRegularSeen = false;
        _sinkMalformed = null;
        try
        {
            _decoder.Decode(block, this);
        }
        finally
        {
            _sinkStream = null;
        }

        if (stream is null)
        {
            return;
        }

        lock (Sync)
        {
            if (!stream.IsOpen)
            {
                return;
            }

            if (_sinkBytes > _settings.MaxResponseHeaderBytes)
            {
                StreamErrorLocked(stream, Http2ErrorCode.Cancel,
                    $"The origin's response headers exceed the edge's limit of {_settings.MaxResponseHeaderBytes / 1024} KiB.", HttpRequestError.ConfigurationLimitExceeded);
                return;
            }

            if (_sinkMalformed is null && _sinkTrailers && !endStream)
            {
                _sinkMalformed = "a second header block that does not end the stream";
            }

            if (_sinkMalformed is null && !_sinkTrailers)
            {
                if (_sinkStatus < 0)
                {
                    _sinkMalformed = "no :status";
                }
                else if (_sinkStatus == 101)
                {
                    _sinkMalformed = "status 101, which HTTP/2 does not allow";
                }
                else if (_sinkStatus < 200 && endStream)
                {
                    _sinkMalformed = "an informational response that ends the stream";
                }
            }

            if (_sinkMalformed is not null)
            {
                StreamErrorLocked(stream, Http2ErrorCode.ProtocolError, $"The origin's response is malformed: {_sinkMalformed}.");
                return;
            }

            if (!_sinkTrailers)
            {
                if (_sinkStatus < 200)
                {
                    // 1xx: the final response follows.
                    return;
                }

                stream.Response = _sinkResponse ?? stream.CreateResponse(_sinkStatus);
            }

            if (endStream)
            {
                stream.ReceiveClosed = true;
                CloseIfDoneLocked(stream);
            }

            stream.WakeReaderLocked();
        }

        _sinkResponse = null;
    }

    void IHpackHeaderSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex)
    {
        _sinkBytes += name.Length + value.Length + 32;
        if (_sinkStream is null || _sinkMalformed is not null || _sinkBytes > _settings.MaxResponseHeaderBytes)
        {
            return;
        }

        if (name[0] == (byte)':')
        {
            if (_sinkTrailers || _sinkRegularSeen || !name.SequenceEqual(":status"u8) || _sinkStatus >= 0)
            {
                _sinkMalformed = "a misplaced or unknown pseudo-header";
                return;
            }

            if (value.Length != 3 || !int.TryParse(value, System.Globalization.NumberStyles.None, null, out var status) || status < 100)
            {
                _sinkMalformed = "an invalid :status";
                return;
            }

            _sinkStatus = status;
            return;
        }

        _sinkRegularSeen = true;
        if (!_sinkTrailers && _sinkStatus is >= 100 and < 200)
        {
            // An informational response's fields are not passed on.
            return;
        }

        if (!_sinkTrailers && _sinkResponse is null)
        {
            if (_sinkStatus < 0)
            {
                _sinkMalformed = "fields before :status";
                return;
            }

            _sinkResponse = _sinkStream.CreateResponse(_sinkStatus);
        }

        var headerName = staticNameIndex != 0 ? HpackStaticTable.Name(staticNameIndex) : Encoding.Latin1.GetString(name);
        var headerValue = value.IsEmpty ? string.Empty : staticNameIndex != 0 ? RecentValue(staticNameIndex, value) : Encoding.Latin1.GetString(value);
        var response = _sinkResponse!;
        if (_sinkTrailers)
        {
            _sinkStream.HasTrailers = true;
            response.TrailingHeaders.TryAddWithoutValidation(headerName, headerValue);
        }
        else if (_sinkStream.ResponseFields is { } fields)
        {
            fields.Add(new(headerName, headerValue));
        }
        else if (!response.Headers.TryAddWithoutValidation(headerName, headerValue))
        {
            response.Content.Headers.TryAddWithoutValidation(headerName, headerValue);
        }
    }

    void IHpackHeaderSink.OnFieldTooLarge(int atLeastBytes) =>
        _sinkBytes = (int)Math.Min(int.MaxValue, (long)_sinkBytes + atLeastBytes + 32);

    // The last value seen for each static-table name (server, content-type, date, cache-control...): an
    // origin sends most of them alike in every response, so the string is made once, not per response.
    // Only this loop touches it.
    private readonly string?[] _recentValues = new string?[HpackStaticTable.Count + 1];

    private string RecentValue(int staticNameIndex, ReadOnlySpan<byte> value)
    {
        var recent = _recentValues[staticNameIndex];
        if (recent is not null && recent.Length == value.Length && Latin1Equals(recent, value))
        {
            return recent;
        }

        return _recentValues[staticNameIndex] = Encoding.Latin1.GetString(value);
    }

    private static bool Latin1Equals(string text, ReadOnlySpan<byte> bytes)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            if (text[i] != bytes[i])
            {
                return false;
            }
        }

        return true;
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

    private void OnSettings(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A SETTINGS frame on a stream.");
        }

        if (header.HasFlag(Http2Flags.Ack))
        {
            if (header.Length != 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "A SETTINGS acknowledgement with a payload.");
            }

            // This end sends SETTINGS once: every acknowledgement after the first is idle.
            if (_settingsAcknowledged)
            {
                CountIdleFrame(header.Type);
            }

            _settingsAcknowledged = true;
            return;
        }

        if (header.Length % 6 != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "A SETTINGS frame whose length is not a multiple of 6.");
        }

        lock (Sync)
        {
            for (var offset = 0; offset < payload.Length; offset += 6)
            {
                var setting = (Http2Setting)BinaryPrimitives.ReadUInt16BigEndian(payload[offset..]);
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(offset + 2)..]);
                switch (setting)
                {
                    case Http2Setting.MaxConcurrentStreams:
                        _peerMaxConcurrentStreams = StreamLimitFor(value);
                        while (_activeStreams < _peerMaxConcurrentStreams && _slotWaiters.TryDequeue(out var waiter))
                        {
                            if (waiter.TrySetResult(true))
                            {
                                _activeStreams++;
                            }
                        }

                        break;
                    case Http2Setting.InitialWindowSize:
                        if (value > Http2FrameHeader.MaxWindowSize)
                        {
                            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1.");
                        }

                        // Section 6.9.2: the change applies to every open stream's window.
                        var delta = (int)value - _peerInitialWindow;
                        _peerInitialWindow = (int)value;
                        foreach (var stream in _streams.Values)
                        {
                            stream.SendWindow += delta;
                            if (stream.SendWindow > Http2FrameHeader.MaxWindowSize)
                            {
                                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "A SETTINGS_INITIAL_WINDOW_SIZE change overflows a stream's window.");
                            }

                            if (delta > 0)
                            {
                                stream.WindowSignal.Set();
                            }
                        }

                        break;
                    case Http2Setting.MaxFrameSize:
                        if (value is < Http2FrameHeader.DefaultMaxFrameSize or > 16777215)
                        {
                            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"SETTINGS_MAX_FRAME_SIZE {value} is out of range.");
                        }

                        _peerMaxFrameSize = (int)value;
                        break;
                    case Http2Setting.EnableConnectProtocol:
                        _peerConnectProtocol = value == 1;
                        break;
                    case Http2Setting.EnablePush when value > 1:
                        throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "SETTINGS_ENABLE_PUSH above 1.");
                    default:
                        // HEADER_TABLE_SIZE: the encoder never uses a dynamic table. Others are not for a client.
                        break;
                }
            }

            if (_abortError is null)
            {
                CountControlReplyLocked(header.Type);
                var ack = Reserve(Http2FrameHeader.Size);
                Http2FrameHeader.Write(ack, 0, Http2FrameType.Settings, Http2Flags.Ack, 0);
            }
        }

        _settingsReceived.TrySetResult();
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
}
