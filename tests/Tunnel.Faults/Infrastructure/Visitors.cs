using System.Net;
using System.Net.Sockets;

namespace Tunnel.Faults.Infrastructure;

/// <summary>HTTP clients that reach an edge's visitor port for any hostname, as DNS pointing at the edge would.</summary>
public static class Visitors
{
    /// <summary>A client whose every connection goes to <paramref name="edge"/>, whatever the URL's host.</summary>
    public static HttpClient Client(IPEndPoint edge, TimeSpan? timeout = null, int maxConnectionsPerServer = int.MaxValue) =>
        new(Handler(edge, maxConnectionsPerServer)) { Timeout = timeout ?? TimeSpan.FromSeconds(30) };

    public static SocketsHttpHandler Handler(IPEndPoint edge, int maxConnectionsPerServer = int.MaxValue) => new()
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        MaxConnectionsPerServer = maxConnectionsPerServer,
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
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
