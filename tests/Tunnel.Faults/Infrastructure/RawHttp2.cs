using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// An HTTP/2 client (prior knowledge) that does what no real one does: opens streams without waiting
/// for the server's concurrency limit. It frames just enough to count what comes back.
/// </summary>
public static class RawHttp2
{
    private const byte Headers = 0x1;
    private const byte RstStream = 0x3;
    private const byte Settings = 0x4;
    private const byte GoAway = 0x7;
    private const byte WindowUpdate = 0x8;

    /// <summary>
    /// Sends <paramref name="streams"/> GET requests as fast as the socket takes them, then reads for up
    /// to 30 s (or until every stream is answered or refused, or the edge closes). Returns responses
    /// begun, streams reset, the GOAWAY error code if one came, and whether the edge ended the connection
    /// (end of stream or a reset) before this client gave up reading. Kestrel may answer such a flood by
    /// aborting the connection outright ("exceeded the output operations maximum queue size"); the reset
    /// can then discard what it had sent.
    /// </summary>
    /// <param name="from">The loopback address to send from, so the edge's per-address caps count this visitor apart from the other attacks.</param>
    public static async Task<(int Responses, int Resets, uint? GoAwayError, bool ClosedByEdge)> FloodAsync(IPEndPoint edge, string authority, int streams, IPAddress from)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Bind(new IPEndPoint(from, 0));
        await socket.ConnectAsync(edge);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        var responses = 0;
        var resets = 0;
        uint? goAway = null;
        var closedByEdge = false;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var giveUp = new CancellationTokenSource();
        var reading = Task.Run(async () =>
        {
            var header = new byte[9];
            try
            {
                while (responses + resets < streams)
                {
                    await stream.ReadExactlyAsync(header, deadline.Token);
                    var length = (header[0] << 16) | (header[1] << 8) | header[2];
                    var payload = new byte[length];
                    await stream.ReadExactlyAsync(payload, deadline.Token);
                    switch (header[3])
                    {
                        case Headers:
                            responses++;
                            break;
                        case RstStream:
                            resets++;
                            break;
                        case GoAway:
                            goAway = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4));
                            break;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or EndOfStreamException or SocketException or ObjectDisposedException)
            {
                closedByEdge = !deadline.IsCancellationRequested && !giveUp.IsCancellationRequested;
            }
            catch (OperationCanceledException)
            {
            }
        });

        await stream.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        await stream.WriteAsync(Frame(Settings, 0, 0, []));
        var window = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(window, 1u << 30);
        await stream.WriteAsync(Frame(WindowUpdate, 0, 0, window));

        // :method GET, :scheme http, :path / from the static table; :authority a literal with name index 1.
        var block = new List<byte> { 0x82, 0x86, 0x84, 0x01, (byte)authority.Length };
        block.AddRange(Encoding.ASCII.GetBytes(authority));
        var batch = new List<byte>();
        try
        {
            for (var i = 0; i < streams; i++)
            {
                batch.AddRange(Frame(Headers, 0x5 /* END_STREAM | END_HEADERS */, (uint)(1 + (2 * i)), [.. block]));
                if (batch.Count > 32 * 1024 || i == streams - 1)
                {
                    await stream.WriteAsync(batch.ToArray(), deadline.Token);
                    batch.Clear();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            // The edge may close the connection on us; what it said before counts.
        }

        await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(30)));
        giveUp.Cancel();
        socket.Dispose();
        await reading;
        return (responses, resets, goAway, closedByEdge);
    }

    private static byte[] Frame(byte type, byte flags, uint streamId, byte[] payload) => HostileOrigin.Encode(type, flags, (int)streamId, payload);
}
