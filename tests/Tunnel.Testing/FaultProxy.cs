using System.Net;
using System.Net.Sockets;

namespace Tunnel.Testing;

/// <summary>
/// A TCP proxy on loopback that can pass traffic, delay it, black-hole it (drop every byte both ways
/// while both sockets stay open, as a dead link does) or reset it, connection by connection.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly Socket _listener;
    private volatile IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Link> _links = [];
    private readonly Task _acceptLoop;

    private FaultProxy(IPEndPoint target)
    {
        _target = target;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(128);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _acceptLoop = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>Where connections accepted from now on go (a restarted server on a new port).</summary>
    public IPEndPoint Target
    {
        get => _target;
        set => _target = value;
    }

    /// <summary>Added to every chunk forwarded from now on, both ways.</summary>
    public TimeSpan Delay { get; set; }

    public IReadOnlyList<Link> Links
    {
        get
        {
            lock (_links)
            {
                return _links.ToArray();
            }
        }
    }

    public static FaultProxy Start(IPEndPoint target) => new(target);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        foreach (var link in Links)
        {
            link.Close();
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
            try
            {
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }

            client.NoDelay = true;
            var link = new Link(this, client, server);
            lock (_links)
            {
                _links.Add(link);
            }

            link.Start(_stop.Token);
        }
    }

    /// <summary>One proxied connection.</summary>
    public sealed class Link
    {
        private readonly FaultProxy _proxy;
        private readonly Socket _client;
        private readonly Socket _server;
        private volatile bool _blackHoled;
        private volatile bool _closed;

        internal Link(FaultProxy proxy, Socket client, Socket server)
        {
            _proxy = proxy;
            _client = client;
            _server = server;
        }

        public bool IsBlackHoled => _blackHoled;

        /// <summary>Closed by a fault, by either end or by the proxy.</summary>
        public bool IsClosed => _closed;

        /// <summary>From now on every byte either way is dropped; both sockets stay open.</summary>
        public void BlackHole() => _blackHoled = true;

        /// <summary>Resets both sides (RST, not FIN).</summary>
        public void Reset()
        {
            foreach (var socket in new[] { _client, _server })
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                }
            }

            Close();
        }

        internal void Close()
        {
            _closed = true;
            _client.Dispose();
            _server.Dispose();
        }

        internal void Start(CancellationToken stop)
        {
            _ = PumpAsync(_client, _server, stop);
            _ = PumpAsync(_server, _client, stop);
        }

        private async Task PumpAsync(Socket from, Socket to, CancellationToken stop)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var read = await from.ReceiveAsync(buffer, SocketFlags.None, stop);
                    if (read == 0)
                    {
                        if (!_blackHoled)
                        {
                            to.Shutdown(SocketShutdown.Send);

                            // One end is done with it: a tunnel does not live on half closed.
                            _closed = true;
                        }

                        return;
                    }

                    if (_blackHoled)
                    {
                        continue;
                    }

                    if (_proxy.Delay > TimeSpan.Zero)
                    {
                        await Task.Delay(_proxy.Delay, stop);
                    }

                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, stop);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                if (!_blackHoled)
                {
                    Close();
                }
            }
        }
    }
}
