using Tunnel.Protocol.Registration;

namespace Tunnel.Protocol.Tests;

/// <summary>
/// The codec never resumes on its caller's <see cref="SynchronizationContext"/>: a caller that blocks on it
/// from a single-threaded context (a UI thread, a legacy host) does not deadlock it.
/// </summary>
public class RegistrationCodecContextTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private static readonly RegistrationRequest Request = new() { ConnectorId = "c", Hostnames = ["a.example.com"] };

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Reading_a_request_completes_while_the_calling_context_is_blocked(int synchronousReads)
    {
        var stream = new AsynchronousStream(RegistrationCodec.EncodeRequest(Request), synchronousReads);

        var read = OnBlockedContext(() => RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None));

        Assert.Equal("c", read.ConnectorId);
    }

    [Fact]
    public void Reading_a_response_completes_while_the_calling_context_is_blocked()
    {
        var stream = new AsynchronousStream(RegistrationCodec.EncodeResponse(RegistrationResponse.Accept(new RegistrationAccepted { ConnectionId = "x" })), synchronousReads: 0);

        var read = OnBlockedContext(() => RegistrationCodec.ReadResponseAsync(stream, CancellationToken.None));

        Assert.Equal("x", read.Accepted!.ConnectionId);
    }

    [Fact]
    public void Reading_a_header_completes_while_the_calling_context_is_blocked()
    {
        var frame = RegistrationCodec.EncodeRequest(Request);
        var stream = new AsynchronousStream(frame, synchronousReads: 0);

        var announced = OnBlockedContext(() => RegistrationCodec.ReadRequestHeaderAsync(stream, CancellationToken.None));

        Assert.Equal(frame.Length - RegistrationCodec.HeaderLength, announced);
    }

    [Fact]
    public void Writing_completes_while_the_calling_context_is_blocked()
    {
        var request = new AsynchronousStream([], synchronousReads: 0);
        var response = new AsynchronousStream([], synchronousReads: 0);

        WaitOnBlockedContext(() => RegistrationCodec.WriteRequestAsync(request, Request, CancellationToken.None));
        WaitOnBlockedContext(() => RegistrationCodec.WriteResponseAsync(response, RegistrationResponse.Accept(new RegistrationAccepted { ConnectionId = "x" }), CancellationToken.None));

        Assert.Equal(RegistrationCodec.EncodeRequest(Request), request.Written.ToArray());
        Assert.Equal(1, request.Flushes);
        Assert.Equal(1, response.Flushes);
    }

    /// <summary>
    /// Starts <paramref name="start"/> under a context that never runs what is posted to it (as a blocked UI
    /// thread would not) and waits, bounded, for the result.
    /// </summary>
    private static T OnBlockedContext<T>(Func<Task<T>> start)
    {
        Task<T>? task = null;
        WaitOnBlockedContext(() => task = start());
        return task!.Result;
    }

    private static void WaitOnBlockedContext(Func<Task> start)
    {
        var previous = SynchronizationContext.Current;
        Task task;
        SynchronizationContext.SetSynchronizationContext(new BlockedContext());
        try
        {
            task = start();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        Assert.True(task.Wait(Patience), "the codec waited for its caller's blocked synchronization context");
    }

    private sealed class BlockedContext : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state)
        {
        }
    }

    /// <summary>Completes its reads and writes on the thread pool, after the first <c>synchronousReads</c> reads.</summary>
    private sealed class AsynchronousStream(byte[] content, int synchronousReads) : Stream
    {
        private int _position;
        private int _reads;

        public MemoryStream Written { get; } = new();

        public int Flushes { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_reads++ >= synchronousReads)
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }

            var count = Math.Min(buffer.Length, content.Length - _position);
            content.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            Written.Write(buffer.Span);
        }

        public override async Task FlushAsync(CancellationToken cancellationToken)
        {
            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            Flushes++;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush() => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
