using System.Net;
using System.Net.Sockets;

namespace Tunnel.Faults.Infrastructure;

/// <summary>HTTP clients that reach an edge's visitor port for any hostname, as DNS pointing at the edge would.</summary>
public static class Visitors
{
    /// <summary>A client whose every connection goes to <paramref name="edge"/>, whatever the URL's host.</summary>
    /// <param name="from">The visitor's own address (a loopback one, like 127.0.0.2), so the edge's per-address caps see another visitor; by default the system's choice.</param>
    public static HttpClient Client(IPEndPoint edge, TimeSpan? timeout = null, int maxConnectionsPerServer = int.MaxValue, IPAddress? from = null) =>
        new(Handler(edge, maxConnectionsPerServer, from)) { Timeout = timeout ?? TimeSpan.FromSeconds(30) };

    public static SocketsHttpHandler Handler(IPEndPoint edge, int maxConnectionsPerServer = int.MaxValue, IPAddress? from = null) => new()
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        MaxConnectionsPerServer = maxConnectionsPerServer,
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                if (from is not null)
                {
                    socket.Bind(new IPEndPoint(from, 0));
                }

                await socket.ConnectAsync(edge, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };
}
