using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Relays the connections of a tunnel endpoint to a local TCP service.</summary>
public static class TcpRelayExtensions
{
    /// <summary>
    /// Serves each connection of the endpoint by opening a TCP connection to <paramref name="target"/>
    /// (<c>host:port</c>, for example <c>localhost:22</c>) and copying bytes both ways until either side
    /// ends: what <c>cloudflared --url tcp://localhost:22</c> does beside an app, here inside it. Use it
    /// on a <c>ListenTunnel(..., TunnelMode.Tcp, ...)</c> endpoint.
    /// </summary>
    /// <param name="listen">The endpoint's options.</param>
    /// <param name="target">The service to relay to, <c>host:port</c>.</param>
    /// <param name="connectTimeout">How long connecting to the service may take; 10 seconds by default.</param>
    /// <exception cref="ArgumentException"><paramref name="target"/> is not <c>host:port</c>.</exception>
    public static ListenOptions UseTcpRelay(this ListenOptions listen, string target, TimeSpan? connectTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(listen);
        var colon = target?.LastIndexOf(':') ?? -1;
        if (target is null || colon <= 0 || !int.TryParse(target.AsSpan(colon + 1), out var port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"UseTcpRelay needs host:port, not '{target}'.", nameof(target));
        }

        var host = target[..colon].Trim('[', ']');
        var timeout = connectTimeout ?? TimeSpan.FromSeconds(10);
        listen.Run(connection => RelayAsync(connection, host, port, timeout));
        return listen;
    }

    private static async Task RelayAsync(ConnectionContext connection, string host, int port, TimeSpan connectTimeout)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
        {
            timeout.CancelAfter(connectTimeout);
            try
            {
                if (IPAddress.TryParse(host, out var address))
                {
                    await socket.ConnectAsync(address, port, timeout.Token).ConfigureAwait(false);
                }
                else
                {
                    await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                connection.Abort(new ConnectionAbortedException($"The relay could not reach {host}:{port}: {ex.Message}"));
                return;
            }
        }

        await using var stream = new NetworkStream(socket, ownsSocket: false);

        // Each direction ends when its source ends (a half-close passes on as one); a reset on either
        // side closes the socket, which ends the other direction too.
        var toService = CopyToServiceAsync(connection, stream, socket);
        var toVisitor = CopyToVisitorAsync(stream, connection);
        await Task.WhenAll(toService, toVisitor).ConfigureAwait(false);
    }

    private static async Task CopyToServiceAsync(ConnectionContext connection, NetworkStream stream, Socket socket)
    {
        try
        {
            // Not ConnectionClosed: it fires when the visitor ends its side, and the service may still answer.
            await connection.Transport.Input.CopyToAsync(stream).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ConnectionResetException or ObjectDisposedException)
        {
            socket.Close();
        }
    }

    private static async Task CopyToVisitorAsync(NetworkStream stream, ConnectionContext connection)
    {
        try
        {
            var output = connection.Transport.Output;
            while (true)
            {
                var read = await stream.ReadAsync(output.GetMemory(16 * 1024)).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                output.Advance(read);
                var flushed = await output.FlushAsync().ConfigureAwait(false);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }

        await connection.Transport.Output.CompleteAsync().ConfigureAwait(false);
    }
}
