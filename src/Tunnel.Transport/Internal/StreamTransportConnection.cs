using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Tunnel.Transport.Internal;

/// <summary>
/// A <see cref="ConnectionContext"/> over a stream (here the TLS stream of a tunnel connection), so
/// that Kestrel serves it as it would an accepted socket. Two loops pump bytes between the stream and
/// the pipes Kestrel reads and writes, as Kestrel's socket transport does.
/// </summary>
internal sealed class StreamTransportConnection : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature,
    IConnectionLifetimeFeature, IConnectionEndPointFeature
{
    // The TLS record limit: reading and writing in pieces of this size keeps one record per syscall.
    private const int IoChunkSize = 16 * 1024;

    private static readonly PipeOptions InputOptions = new(
        pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024,
        minimumSegmentSize: IoChunkSize, useSynchronizationContext: false);

    private static readonly PipeOptions OutputOptions = new(
        pauseWriterThreshold: 1024 * 1024, resumeWriterThreshold: 512 * 1024,
        minimumSegmentSize: IoChunkSize, useSynchronizationContext: false);

    private readonly Stream _stream;
    private readonly Pipe _input = new(InputOptions);
    private readonly Pipe _output = new(OutputOptions);
    private readonly CancellationTokenSource _closed = new();
    private readonly CancellationTokenSource _stopReceiving = new();
    private readonly Func<ValueTask>? _endOfSend;
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly FeatureCollection _features = new();
    private IDictionary<object, object?>? _items;
    private Task _receiveTask = Task.CompletedTask;
    private Task _sendTask = Task.CompletedTask;
    private volatile ConnectionAbortedException? _abortReason;
    private int _streamClosed;
    private int _disposeStarted;

    /// <param name="stream">The stream carrying the connection: a tunnel's TLS stream, or a tunnel stream carrying a visitor's connection.</param>
    /// <param name="connectionId">Kestrel's id for the connection.</param>
    /// <param name="localEndPoint">What Kestrel sees as the local end.</param>
    /// <param name="remoteEndPoint">What Kestrel sees as the remote end (for a visitor connection, the visitor).</param>
    /// <param name="endOfSend">
    /// What ends the sending side when Kestrel completes its output, if not closing the stream: a visitor
    /// connection carried on a tunnel stream ends its response (END_STREAM) and keeps reading, so a
    /// half-close passes on; <c>null</c> closes the stream (a tunnel connection: TLS close_notify, FIN).
    /// </param>
    public StreamTransportConnection(Stream stream, string connectionId, EndPoint? localEndPoint, EndPoint? remoteEndPoint, Func<ValueTask>? endOfSend = null)
    {
        _stream = stream;
        _endOfSend = endOfSend;
        ConnectionId = connectionId;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        Transport = new DuplexPipe(_input.Reader, _output.Writer);
        ConnectionClosed = _closed.Token;

        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
    }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed { get; set; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    /// <summary>Completes when Kestrel has disposed the connection (or it never reached Kestrel and was disposed).</summary>
    public Task Disposed => _disposed.Task;

    /// <summary>Starts the two pump loops.</summary>
    public void Start()
    {
        _receiveTask = ReceiveAsync();
        _sendTask = SendAsync();
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;

        // Stop sending at once and break the pending read by closing the stream.
        _output.Reader.CancelPendingRead();
        CloseStream();
        StopReceiving();
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0)
        {
            await _disposed.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            Transport.Input.Complete();
            Transport.Output.Complete();

            // The send loop flushes what Kestrel wrote last (a GOAWAY, say) and then closes the stream.
            // Kestrel is done with the connection, so the receive loop stops too: closing a tunnel
            // stream does not end a read pending on it, and the peer may never send again.
            await _sendTask.ConfigureAwait(false);
            CloseStream();
            StopReceiving();
            await _receiveTask.ConfigureAwait(false);
        }
        finally
        {
            _closed.Dispose();
            _stopReceiving.Dispose();
            _disposed.TrySetResult();
        }
    }

    private async Task ReceiveAsync()
    {
        Exception? error = null;
        var writer = _input.Writer;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(IoChunkSize);
                var read = await _stream.ReadAsync(memory, _stopReceiving.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                writer.Advance(read);
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or NotSupportedException or InvalidOperationException)
        {
            // The stream ended under us: aborted by Kestrel, reset by the edge, or dead.
            error = _abortReason ?? (Exception)new ConnectionResetException(ex.Message, ex);
        }
        finally
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
            FireConnectionClosed();
        }
    }

    private async Task SendAsync()
    {
        var reader = _output.Reader;
        byte[]? coalesce = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled)
                {
                    break;
                }

                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    await WriteAsync(buffer, coalesce ??= ArrayPool<byte>.Shared.Rent(IoChunkSize * 4)).ConfigureAwait(false);
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or NotSupportedException or InvalidOperationException)
        {
            _abortReason ??= new ConnectionAbortedException(ex.Message, ex);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
            if (coalesce is not null)
            {
                ArrayPool<byte>.Shared.Return(coalesce);
            }

            // Nothing more will be written: close the stream (TLS close_notify, then FIN), which also
            // tells the edge this connection is gone; or end only the sending side.
            await EndSendingAsync().ConfigureAwait(false);
        }
    }

    private async ValueTask EndSendingAsync()
    {
        if (_endOfSend is null || _abortReason is not null)
        {
            CloseStream();
            return;
        }

        try
        {
            await _endOfSend().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            CloseStream();
        }
    }

    private void StopReceiving()
    {
        try
        {
            _stopReceiving.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async ValueTask WriteAsync(ReadOnlySequence<byte> buffer, byte[] coalesce)
    {
        if (buffer.IsSingleSegment)
        {
            await _stream.WriteAsync(buffer.First).ConfigureAwait(false);
            return;
        }

        // Kestrel writes frames into small pipe segments; gathering them avoids a TLS record and a
        // syscall per segment.
        var filled = 0;
        foreach (var segment in buffer)
        {
            var remaining = segment;
            while (!remaining.IsEmpty)
            {
                var take = Math.Min(remaining.Length, coalesce.Length - filled);
                remaining.Span[..take].CopyTo(coalesce.AsSpan(filled));
                filled += take;
                remaining = remaining[take..];
                if (filled == coalesce.Length)
                {
                    await _stream.WriteAsync(coalesce.AsMemory(0, filled)).ConfigureAwait(false);
                    filled = 0;
                }
            }
        }

        if (filled > 0)
        {
            await _stream.WriteAsync(coalesce.AsMemory(0, filled)).ConfigureAwait(false);
        }
    }

    private void CloseStream()
    {
        if (Interlocked.Exchange(ref _streamClosed, 1) == 0)
        {
            try
            {
                _stream.Dispose();
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                // Already broken; closing is all that was wanted.
            }
        }
    }

    private void FireConnectionClosed()
    {
        // Run the callbacks off the receive loop, as Kestrel's transports do.
        ThreadPool.UnsafeQueueUserWorkItem(static state =>
        {
            try
            {
                state.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }, _closed, preferLocal: false);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
