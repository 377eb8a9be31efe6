using Tunnel.Edge.Tunnels.Http2;
using Xunit;

namespace Tunnel.Edge.Tests.Http2;

/// <summary>The frame reader on whole, split, cut and oversized frames.</summary>
public class Http2FrameReaderTests
{
    [Fact]
    public async Task Reads_frames_that_arrive_a_byte_at_a_time_and_ends_cleanly_between_frames()
    {
        var bytes = new List<byte>();
        bytes.AddRange(Frame(Http2FrameType.Ping, 0, 0, new byte[8]));
        bytes.AddRange(Frame(Http2FrameType.Data, Http2Flags.EndStream, 1, new byte[Http2FrameHeader.DefaultMaxFrameSize]));
        bytes.AddRange(Frame(Http2FrameType.Settings, Http2Flags.Ack, 0, []));
        using var reader = new Http2FrameReader(new TrickleStream(bytes.ToArray()), Http2FrameHeader.DefaultMaxFrameSize);

        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(new Http2FrameHeader(8, Http2FrameType.Ping, 0, 0), reader.Header);
        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(new Http2FrameHeader(Http2FrameHeader.DefaultMaxFrameSize, Http2FrameType.Data, Http2Flags.EndStream, 1), reader.Header);
        Assert.Equal(Http2FrameHeader.DefaultMaxFrameSize, reader.Payload.Length);
        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(Http2FrameType.Settings, reader.Header.Type);
        Assert.False(await reader.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_stream_that_ends_inside_a_frame_is_an_IOException()
    {
        var frame = Frame(Http2FrameType.Data, 0, 1, new byte[100]);
        using var reader = new Http2FrameReader(new MemoryStream(frame[..50]), Http2FrameHeader.DefaultMaxFrameSize);
        await Assert.ThrowsAsync<IOException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());

        using var headerCut = new Http2FrameReader(new MemoryStream(frame[..5]), Http2FrameHeader.DefaultMaxFrameSize);
        await Assert.ThrowsAsync<IOException>(() => headerCut.ReadFrameAsync(CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task A_frame_over_the_advertised_size_is_a_frame_size_error_before_its_payload_is_read()
    {
        var header = Frame(Http2FrameType.Data, 0, 1, [])[..9];
        header[0] = 0x00;
        header[1] = 0x40;
        header[2] = 0x01;
        using var reader = new Http2FrameReader(new MemoryStream(header), Http2FrameHeader.DefaultMaxFrameSize);
        var error = await Assert.ThrowsAsync<Http2ConnectionException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());
        Assert.Equal(Http2ErrorCode.FrameSizeError, error.Code);
    }

    private static byte[] Frame(Http2FrameType type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[Http2FrameHeader.Size + payload.Length];
        Http2FrameHeader.Write(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame, Http2FrameHeader.Size);
        return frame;
    }

    /// <summary>Hands out at most one byte per read (and nothing for a zero-byte read).</summary>
    private sealed class TrickleStream(byte[] data) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer.Length == 0 ? buffer : buffer[..1], cancellationToken);
    }
}
