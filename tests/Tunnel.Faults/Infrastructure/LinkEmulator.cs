using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// A TCP proxy on loopback that behaves like a slow link: every chunk leaves one-way-delay after it
/// arrived, and no direction carries more than the rate. Chunks queue (up to a bound, then the sender
/// is pushed back, as a full router queue does) rather than wait for one another's delay.
/// </summary>
/// <remarks>
/// The kernel here has no <c>sch_netem</c>, so <c>tc netem delay</c> is not available; this does the
/// delay line in user space. Loss is done in the kernel instead (<see cref="NetworkNamespace.DropPacketsAsync"/>).
/// </remarks>
public sealed class LinkEmulator : IAsyncDisposable
{
    private const int ChunkSize = 16 * 1024;
    private const int QueuedChunks = 64;

    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly TimeSpan _oneWayDelay;
    private readonly double _bytesPerSecond;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly Task _acceptLoop;
    private long _carried;

    private LinkEmulator(IPEndPoint target, TimeSpan roundTrip, long bitsPerSecond)
    {
        _target = target;
        _oneWayDelay = roundTrip / 2;
        _bytesPerSecond = bitsPerSecond / 8.0;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(512);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _acceptLoop = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Bytes carried so far, both directions.</summary>
    public long Carried => Interlocked.Read(ref _carried);

    public static LinkEmulator Start(IPEndPoint target, TimeSpan roundTrip, long bitsPerSecond) => new(target, roundTrip, bitsPerSecond);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }

        try
        {
            await _acceptLoop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        // One pacing clock per direction of the whole link: every connection shares its rate.
        var up = new Pacer(_bytesPerSecond);
        var down = new Pacer(_bytesPerSecond);
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.NoDelay = true;
            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(server);
            }

            _ = ConnectAndPumpAsync(client, server, up, down);
        }
    }

    private async Task ConnectAndPumpAsync(Socket client, Socket server, Pacer up, Pacer down)
    {
        try
        {
            // The SYN crosses the link too.
            await Task.Delay(_oneWayDelay, _stop.Token);
            await server.ConnectAsync(_target, _stop.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            client.Dispose();
            server.Dispose();
            return;
        }

        await Task.WhenAll(PumpAsync(client, server, up), PumpAsync(server, client, down));
        client.Dispose();
        server.Dispose();
        lock (_sockets)
        {
            _sockets.Remove(client);
            _sockets.Remove(server);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, Pacer pacer)
    {
        var queue = Channel.CreateBounded<(long ArrivedAt, byte[] Data)>(new BoundedChannelOptions(QueuedChunks) { SingleReader = true, SingleWriter = true });
        var sending = SendAsync(to, queue.Reader, pacer);
        try
        {
            while (true)
            {
                var buffer = new byte[ChunkSize];
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                await queue.Writer.WriteAsync((Stopwatch.GetTimestamp(), buffer[..read]), _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException or ChannelClosedException)
        {
        }

        queue.Writer.TryComplete();
        await sending;
    }

    private async Task SendAsync(Socket to, ChannelReader<(long ArrivedAt, byte[] Data)> queue, Pacer pacer)
    {
        try
        {
            await foreach (var (arrivedAt, data) in queue.ReadAllAsync(_stop.Token))
            {
                var due = pacer.Schedule(arrivedAt + (long)(_oneWayDelay.TotalSeconds * Stopwatch.Frequency), data.Length);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, _stop.Token);
                }

                await to.SendAsync(data, SocketFlags.None, _stop.Token);
                Interlocked.Add(ref _carried, data.Length);
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            to.Dispose();
        }
    }

    /// <summary>Serializes one direction at the link's rate: a chunk leaves no earlier than the last one finished.</summary>
    private sealed class Pacer(double bytesPerSecond)
    {
        private long _free;

        public long Schedule(long earliest, int bytes)
        {
            lock (this)
            {
                var start = Math.Max(earliest, _free);
                _free = start + (long)(bytes / bytesPerSecond * Stopwatch.Frequency);
                return _free;
            }
        }
    }
}
