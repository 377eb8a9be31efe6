using System.Buffers;
using System.Buffers.Binary;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>The connection's life: started on the first request, watched by keepalive PINGs, closed once.</summary>
internal sealed partial class Http2Connection
{
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

    /// <summary>Tells <see cref="Http2ClientSettings.OriginFault"/>, once per connection.</summary>
    private void ReportOriginFault(string errorType, string message)
    {
        if (_settings.OriginFault is { } report && Interlocked.Exchange(ref _originFaultReported, 1) == 0)
        {
            report(errorType, message);
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

    private void DisposeStream()
    {
        if (Interlocked.Exchange(ref _streamDisposed, 1) == 0)
        {
            _keepAliveTimer?.Dispose();
            _stream.Dispose();
        }
    }
}
