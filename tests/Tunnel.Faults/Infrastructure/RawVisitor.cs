using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tunnel.Faults.Infrastructure;

/// <summary>A visitor speaking raw bytes to the edge: what no well-behaved HTTP client would send.</summary>
public static class RawVisitor
{
    /// <summary>Sends <paramref name="request"/> and reads until the edge closes or goes quiet; returns what came back.</summary>
    public static async Task<string> ExchangeAsync(IPEndPoint edge, string request, TimeSpan? quiet = null)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(edge);
        try
        {
            await socket.SendAsync(Encoding.Latin1.GetBytes(request), SocketFlags.None);
        }
        catch (SocketException)
        {
            // The edge may refuse and close before the whole request is written; its answer still counts.
        }

        return await ReadAllAsync(socket, quiet ?? TimeSpan.FromSeconds(5));
    }

    /// <summary>Reads until the peer closes, or nothing has come for <paramref name="quiet"/>.</summary>
    public static async Task<string> ReadAllAsync(Socket socket, TimeSpan quiet)
    {
        var received = new StringBuilder();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            using var timeout = new CancellationTokenSource(quiet);
            int read;
            try
            {
                read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                return received.ToString();
            }
            catch (SocketException)
            {
                return received.ToString();
            }

            if (read == 0)
            {
                return received.ToString();
            }

            received.Append(Encoding.Latin1.GetString(buffer, 0, read));
        }
    }

    /// <summary>The status codes of every response in <paramref name="responses"/>, in order.</summary>
    public static int[] Statuses(string responses) =>
        System.Text.RegularExpressions.Regex.Matches(responses, @"HTTP/1\.1 (\d{3}) ")
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .ToArray();

    /// <summary>True once the peer has closed (reading past anything it sent first).</summary>
    public static bool IsClosedByPeer(Socket socket) => SocketState.IsClosedByPeer(socket);
}
