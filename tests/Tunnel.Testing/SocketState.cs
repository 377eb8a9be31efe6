using System.Net.Sockets;

namespace Tunnel.Testing;

/// <summary>What a raw test socket can tell about its peer without blocking.</summary>
public static class SocketState
{
    /// <summary>True once the peer has closed or reset the connection (reading past anything it sent first).</summary>
    public static bool IsClosedByPeer(Socket socket)
    {
        var buffer = new byte[4096];
        try
        {
            while (socket.Poll(0, SelectMode.SelectRead))
            {
                if (socket.Receive(buffer) == 0)
                {
                    return true;
                }
            }

            return false;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }
}
