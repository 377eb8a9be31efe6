using System.IO.Pipelines;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Visitors;

/// <summary>
/// Serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one cleartext port, which Kestrel does
/// not do by itself: a connection middleware on the visitor port looks at the first bytes, and a
/// connection that starts with the HTTP/2 preface is handed to a second, HTTP/2-only Kestrel endpoint
/// that this class also serves as an in-memory transport.
/// </summary>
internal sealed class H2cHandoff : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();
    private Channel<ConnectionContext> _handedOff = Channel.CreateUnbounded<ConnectionContext>();

    public bool CanBind(EndPoint endpoint) => endpoint is H2cHandoffEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        _handedOff = Channel.CreateUnbounded<ConnectionContext>();
        return new ValueTask<IConnectionListener>(new Listener(endpoint, _handedOff));
    }

    /// <summary>What a new connection's first bytes were, as far as the HTTP/2 preface goes.</summary>
    internal enum FirstBytes
    {
        /// <summary>The whole HTTP/2 preface.</summary>
        Preface,

        /// <summary>Anything else, or the visitor closed: the HTTP/1.1 server takes it (and answers or closes).</summary>
        Other,

        /// <summary>Nothing, or part of the preface only, within the request-headers timeout: the connection was closed.</summary>
        TimedOut,
    }

    /// <summary>The connection middleware for the visitor port.</summary>
    public ConnectionDelegate Sniff(ConnectionDelegate next, VisitorConnectionLimits limits) => async connection =>
    {
        var first = await SniffAsync(connection, limits).ConfigureAwait(false);
        if (first == FirstBytes.TimedOut)
        {
            return;
        }

        if (first == FirstBytes.Other)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }

        var handedOff = new HandedOffConnection(connection);
        if (!_handedOff.Writer.TryWrite(handedOff))
        {
            connection.Abort(new ConnectionAbortedException("The edge is stopping."));
            return;
        }

        await handedOff.Completed.ConfigureAwait(false);
    };

    /// <summary>
    /// Waits, at most the request-headers timeout, until the first bytes tell whether the connection
    /// starts with the HTTP/2 preface; leaves every byte for whoever reads next. A connection that sends
    /// nothing, or only part of the preface, in that time is closed, counted and logged here.
    /// </summary>
    internal static async Task<FirstBytes> SniffAsync(ConnectionContext connection, VisitorConnectionLimits limits)
    {
        using var timeout = new CancellationTokenSource(limits.FirstBytesTimeout, limits.Time);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, connection.ConnectionClosed);
        var (matches, seen) = await StartsWithPrefaceAsync(connection.Transport.Input, either.Token).ConfigureAwait(false);
        if (matches is { } preface)
        {
            return preface ? FirstBytes.Preface : FirstBytes.Other;
        }

        if (!timeout.IsCancellationRequested || connection.ConnectionClosed.IsCancellationRequested)
        {
            return FirstBytes.Other;
        }

        limits.Refused(VisitorRefusals.FirstBytesTimeout, connection.RemoteEndPoint,
            $"it sent {(seen == 0 ? "nothing" : $"{seen} bytes of the HTTP/2 preface only")} within {limits.FirstBytesTimeout.TotalSeconds:0.###} s (Limits:RequestHeadersTimeout)");
        connection.Abort(new ConnectionAbortedException("The visitor sent no request within the request-headers timeout."));
        return FirstBytes.TimedOut;
    }

    /// <returns>Whether the bytes are the preface, <c>null</c> if the wait was cancelled first; and how many bytes were seen.</returns>
    private static async Task<(bool? Matches, long Seen)> StartsWithPrefaceAsync(PipeReader input, CancellationToken cancellationToken)
    {
        long seen = 0;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return (null, seen);
            }
            catch (Exception ex) when (ex is ConnectionResetException or IOException)
            {
                return (false, seen);
            }

            var buffer = result.Buffer;
            seen = buffer.Length;
            var length = (int)Math.Min(buffer.Length, Preface.Length);
            var matches = true;
            var position = 0;
            foreach (var segment in buffer)
            {
                var span = segment.Span;
                for (var i = 0; i < span.Length && position < length; i++, position++)
                {
                    if (span[i] != Preface[position])
                    {
                        matches = false;
                        break;
                    }
                }

                if (!matches || position >= length)
                {
                    break;
                }
            }

            if (!matches || length == Preface.Length || result.IsCompleted || result.IsCanceled)
            {
                // Leave every byte for whoever reads next.
                input.AdvanceTo(buffer.Start);
                return (matches && length == Preface.Length, seen);
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private sealed class Listener(EndPoint endPoint, Channel<ConnectionContext> handedOff) : IConnectionListener
    {
        public EndPoint EndPoint { get; } = endPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                while (await handedOff.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (handedOff.Reader.TryRead(out var connection))
                    {
                        return connection;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }

            return null;
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            handedOff.Writer.TryComplete();
            return default;
        }

        public ValueTask DisposeAsync() => UnbindAsync();
    }

    /// <summary>The visitor's connection as the HTTP/2 endpoint sees it; disposing it hands it back.</summary>
    private sealed class HandedOffConnection(ConnectionContext inner) : ConnectionContext
    {
        private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly FeatureCollection _features = new(inner.Features);

        public Task Completed => _completed.Task;

        public override string ConnectionId { get => inner.ConnectionId; set => inner.ConnectionId = value; }

        public override IFeatureCollection Features => _features;

        public override IDictionary<object, object?> Items { get => inner.Items; set => inner.Items = value; }

        public override IDuplexPipe Transport { get => inner.Transport; set => inner.Transport = value; }

        public override CancellationToken ConnectionClosed { get => inner.ConnectionClosed; set => inner.ConnectionClosed = value; }

        public override EndPoint? LocalEndPoint { get => inner.LocalEndPoint; set => inner.LocalEndPoint = value; }

        public override EndPoint? RemoteEndPoint { get => inner.RemoteEndPoint; set => inner.RemoteEndPoint = value; }

        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);

        public override ValueTask DisposeAsync()
        {
            _completed.TrySetResult();
            return default;
        }
    }
}

/// <summary>The in-memory endpoint behind <see cref="H2cHandoff"/>.</summary>
internal sealed class H2cHandoffEndPoint : EndPoint
{
    public override string ToString() => "h2c-handoff";
}
