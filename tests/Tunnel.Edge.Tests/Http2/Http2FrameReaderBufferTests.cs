using Tunnel.Edge.Tunnels.Http2;

namespace Tunnel.Edge.Tests.Http2;

/// <summary>
/// The frame reader's buffer: many frames from one read, frames split across reads so the partial
/// one must move to the front, the header's fields, and an idle wait that holds no buffer.
/// </summary>
public class Http2FrameReaderBufferTests
{
    private const int MaxFrameSize = Http2FrameHeader.DefaultMaxFrameSize;

    [Fact]
    public async Task Several_frames_from_one_read_come_out_one_at_a_time_with_their_own_payloads()
    {
        var bytes = Concat(
            Frame(Http2FrameType.Headers, Http2Flags.EndHeaders, 1, Pattern(5, 1)),
            Frame(Http2FrameType.Data, 0, 1, Pattern(300, 2)),
            Frame(Http2FrameType.Data, Http2Flags.EndStream, 3, Pattern(1, 3)));
        using var reader = new Http2FrameReader(new MemoryStream(bytes), MaxFrameSize);

        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(new Http2FrameHeader(5, Http2FrameType.Headers, Http2Flags.EndHeaders, 1), reader.Header);
        Assert.Equal(Pattern(5, 1), reader.Payload.ToArray());
        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(new Http2FrameHeader(300, Http2FrameType.Data, 0, 1), reader.Header);
        Assert.Equal(Pattern(300, 2), reader.Payload.ToArray());
        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(new Http2FrameHeader(1, Http2FrameType.Data, Http2Flags.EndStream, 3), reader.Header);
        Assert.Equal(Pattern(1, 3), reader.Payload.ToArray());
        Assert.False(await reader.ReadFrameAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(4096)]
    [InlineData(16_393)]
    public async Task Full_size_frames_in_chunks_that_cut_them_anywhere_arrive_whole_and_in_order(int chunk)
    {
        const int Frames = 12;
        var frames = Enumerable.Range(0, Frames).Select(i => Frame(Http2FrameType.Data, 0, (2 * i) + 1, Pattern(MaxFrameSize - (i % 3), i))).ToArray();
        using var reader = new Http2FrameReader(new ChunkedStream(Concat(frames), chunk), MaxFrameSize);

        for (var i = 0; i < Frames; i++)
        {
            Assert.True(await reader.ReadFrameAsync(CancellationToken.None), $"frame {i}");
            Assert.Equal((2 * i) + 1, reader.Header.StreamId);
            Assert.Equal(Pattern(MaxFrameSize - (i % 3), i), reader.Payload.ToArray());
        }

        Assert.False(await reader.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_frame_of_exactly_the_limit_is_read_and_one_byte_more_is_refused_with_type_and_sizes()
    {
        const int Limit = 100;
        using var exact = new Http2FrameReader(new MemoryStream(Frame(Http2FrameType.Data, 0, 1, Pattern(Limit, 7))), Limit);
        Assert.True(await exact.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(Pattern(Limit, 7), exact.Payload.ToArray());

        using var over = new Http2FrameReader(new MemoryStream(Frame(Http2FrameType.Headers, 0, 1, Pattern(Limit + 1, 7))), Limit);
        var error = await Assert.ThrowsAsync<Http2ConnectionException>(() => over.ReadFrameAsync(CancellationToken.None).AsTask());
        Assert.Equal(Http2ErrorCode.FrameSizeError, error.Code);
        Assert.Equal("frame_size_error", error.ErrorType);
        Assert.Equal("The origin sent a Headers frame of 101 bytes; at most 100 are allowed.", error.Message);
    }

    [Fact]
    public async Task The_cut_inside_a_frame_is_reported_with_the_bytes_that_arrived()
    {
        var frame = Frame(Http2FrameType.Data, 0, 1, Pattern(100, 1));
        using var reader = new Http2FrameReader(new MemoryStream(Concat(Frame(Http2FrameType.Ping, 0, 0, new byte[8]), frame[..50])), MaxFrameSize);

        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        var error = await Assert.ThrowsAsync<IOException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());
        Assert.Equal("The tunnel connection ended inside a frame (50 bytes of it read).", error.Message);
    }

    [Fact]
    public async Task An_idle_reader_waits_with_a_zero_byte_read_and_only_then_reads_into_a_buffer()
    {
        var stream = new RecordingStream(Concat(Frame(Http2FrameType.Ping, 0, 0, new byte[8]), Frame(Http2FrameType.Ping, Http2Flags.Ack, 0, new byte[8])));
        using var reader = new Http2FrameReader(stream, MaxFrameSize);

        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(0, stream.ReadSizes[0]);
        Assert.True(stream.ReadSizes[1] >= Http2FrameHeader.Size + MaxFrameSize);

        // Both frames came in the first read: the second is served from the buffer without reading.
        var reads = stream.ReadSizes.Count;
        Assert.True(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(Http2Flags.Ack, reader.Header.Flags);
        Assert.Equal(reads, stream.ReadSizes.Count);

        // Everything consumed: the next wait is a zero-byte read again.
        Assert.False(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(0, stream.ReadSizes[reads]);
    }

    [Fact]
    public void The_header_holds_a_24_bit_length_and_a_31_bit_stream_id_and_ignores_the_reserved_bit()
    {
        var bytes = new byte[Http2FrameHeader.Size];
        Http2FrameHeader.Write(bytes, 0x0A0B0C, Http2FrameType.WindowUpdate, 0xF1, 0x7FFF_FFFE);
        Assert.Equal(new byte[] { 0x0A, 0x0B, 0x0C, 0x08, 0xF1, 0x7F, 0xFF, 0xFF, 0xFE }, bytes);
        Assert.Equal(new Http2FrameHeader(0x0A0B0C, Http2FrameType.WindowUpdate, 0xF1, 0x7FFF_FFFE), Http2FrameHeader.Read(bytes));

        bytes[5] |= 0x80;
        Assert.Equal(0x7FFF_FFFE, Http2FrameHeader.Read(bytes).StreamId);
    }

    [Fact]
    public void A_flag_is_set_only_when_its_bit_is()
    {
        var header = new Http2FrameHeader(0, Http2FrameType.Headers, Http2Flags.EndHeaders | Http2Flags.Padded, 1);
        Assert.True(header.HasFlag(Http2Flags.EndHeaders));
        Assert.True(header.HasFlag(Http2Flags.Padded));
        Assert.False(header.HasFlag(Http2Flags.EndStream));
        Assert.False(header.HasFlag(Http2Flags.Priority));
    }

    private static byte[] Pattern(int length, int seed) =>
        Enumerable.Range(0, length).Select(i => (byte)((i * 31) + (seed * 7) + (i >> 8))).ToArray();

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static byte[] Frame(Http2FrameType type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[Http2FrameHeader.Size + payload.Length];
        Http2FrameHeader.Write(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame, Http2FrameHeader.Size);
        return frame;
    }

    /// <summary>Hands out at most <c>chunk</c> bytes per read.</summary>
    private sealed class ChunkedStream(byte[] data, int chunk) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);
    }

    /// <summary>Remembers the size of every read asked of it.</summary>
    private sealed class RecordingStream(byte[] data) : MemoryStream(data)
    {
        public List<int> ReadSizes { get; } = [];

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ReadSizes.Add(buffer.Length);
            return base.ReadAsync(buffer, cancellationToken);
        }
    }
}
