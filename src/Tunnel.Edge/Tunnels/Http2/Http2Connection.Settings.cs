using System.Buffers.Binary;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>SETTINGS: the origin's, applied to the connection; this end's own, sent once at the start.</summary>
internal sealed partial class Http2Connection
{
    private void OnSettings(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A SETTINGS frame on a stream.");
        }

        if (header.HasFlag(Http2Flags.Ack))
        {
            OnSettingsAcknowledged(header);
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
                ApplySettingLocked(setting, value);
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

    private void OnSettingsAcknowledged(Http2FrameHeader header)
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
    }

    private void ApplySettingLocked(Http2Setting setting, uint value)
    {
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
                ApplyInitialWindowSizeLocked(value);
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

    private void ApplyInitialWindowSizeLocked(uint value)
    {
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
    }

    private static void WriteSetting(Span<byte> destination, Http2Setting setting, uint value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)setting);
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], value);
    }
}
