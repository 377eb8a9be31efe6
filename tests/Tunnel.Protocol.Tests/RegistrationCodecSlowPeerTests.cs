using System.Buffers.Binary;
using System.Text;
using Tunnel.Protocol.Registration;

namespace Tunnel.Protocol.Tests;

/// <summary>
/// The reader against a peer that announces a large registration and sends it slowly, or not at all:
/// what the reader holds follows what arrived, never what was announced.
/// </summary>
public class RegistrationCodecSlowPeerTests
{
    [Fact]
    public async Task A_peer_announcing_the_maximum_and_sending_little_never_gets_a_buffer_of_the_announced_size()
    {
        var header = Header(TunnelLimits.MaxFrameBodyBytes);
        using var stream = new TrickleStream([.. header, .. new byte[100]], chunk: 10, stallAtEnd: true);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            var reading = RegistrationCodec.ReadRequestAsync(stream, timeout.Token);
            await stream.Stalled.WaitAsync(TimeSpan.FromSeconds(5));
            await timeout.CancelAsync();
            await reading;
        });

        Assert.True(stream.LargestReadOffered <= RegistrationCodec.InitialBodyBufferBytes,
            $"the reader offered a read buffer of {stream.LargestReadOffered} bytes after 100 of {TunnelLimits.MaxFrameBodyBytes} announced bytes arrived");
    }

    [Fact]
    public async Task A_large_registration_sent_slowly_is_read_whole_in_a_buffer_that_grows_with_it()
    {
        var request = new RegistrationRequest
        {
            ConnectorId = "slow",
            Hostnames = Enumerable.Range(0, TunnelLimits.MaxHostnamesPerRegistration).Select(i => $"host-{i:D3}-{new string('a', 200)}.example.com").ToArray(),
        };
        var frame = RegistrationCodec.EncodeRequest(request);
        Assert.True(frame.Length > 4 * RegistrationCodec.InitialBodyBufferBytes, $"the frame is {frame.Length} bytes");
        using var stream = new TrickleStream(frame, chunk: 1000, stallAtEnd: false);

        var read = await RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None);

        Assert.Equal(request.Hostnames, read.Hostnames);

        // Doubling: the largest free space offered is at most what had arrived by then.
        Assert.True(stream.LargestReadOffered <= Math.Max(RegistrationCodec.InitialBodyBufferBytes, frame.Length / 2 + 1),
            $"the reader offered {stream.LargestReadOffered} bytes at once for a {frame.Length}-byte frame");
    }

    [Fact]
    public async Task Reading_only_the_header_returns_the_announced_length_and_leaves_the_body()
    {
        using var stream = new TrickleStream([.. Header(TunnelLimits.MaxFrameBodyBytes), .. Encoding.UTF8.GetBytes("{\"conn")], chunk: 4, stallAtEnd: true);

        var announced = await RegistrationCodec.ReadRequestHeaderAsync(stream, CancellationToken.None);

        Assert.Equal(TunnelLimits.MaxFrameBodyBytes, announced);
        Assert.Equal(RegistrationCodec.HeaderLength, stream.Delivered);
    }

    private static byte[] Header(int length)
    {
        var header = new byte[RegistrationCodec.HeaderLength];
        "TUN1"u8.CopyTo(header);
        header[4] = 1;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), length);
        return header;
    }

    /// <summary>Delivers its bytes a few at a time; at the end, either EOF or a read that waits until cancelled.</summary>
    private sealed class TrickleStream(byte[] content, int chunk, bool stallAtEnd) : Stream
    {
        private readonly TaskCompletionSource _stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Delivered { get; private set; }

        public int LargestReadOffered { get; private set; }

        public Task Stalled => _stalled.Task;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            LargestReadOffered = Math.Max(LargestReadOffered, buffer.Length);
            if (Delivered == content.Length)
            {
                if (!stallAtEnd)
                {
                    return 0;
                }

                _stalled.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            await Task.Yield();
            var count = Math.Min(Math.Min(chunk, buffer.Length), content.Length - Delivered);
            content.AsMemory(Delivered, count).CopyTo(buffer);
            Delivered += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
