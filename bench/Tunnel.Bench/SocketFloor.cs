using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Tunnel.Bench;

/// <summary>
/// The baseline of the passthrough memory rows: what holding an idle accepted TCP connection costs a
/// .NET process by itself (the socket object, its event-loop registration, a pending zero-byte receive,
/// as Kestrel's socket transport holds a connection between requests), in a process of its own (this
/// driver with <c>--socket-floor-server</c>). Each connection carries one request's worth of bytes each
/// way first, as the passthrough connections do.
/// </summary>
internal static partial class SocketFloor
{
    public const string ServerFlag = "--socket-floor-server";

    /// <summary>The server process's body: listen, print the port, hold every connection until killed.</summary>
    public static async Task<int> ServeAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(2048);
        Console.WriteLine($"socket floor listening on {((IPEndPoint)listener.LocalEndPoint!).Port}");
        while (true)
        {
            var socket = await listener.AcceptAsync().ConfigureAwait(false);
            _ = HoldAsync(socket);
        }

        static async Task HoldAsync(Socket socket)
        {
            try
            {
                socket.NoDelay = true;
                var one = new byte[1];
                await socket.ReceiveAsync(one, SocketFlags.None).ConfigureAwait(false);
                await socket.SendAsync(one, SocketFlags.None).ConfigureAwait(false);
                await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
            }
            catch (SocketException)
            {
            }

            socket.Dispose();
        }
    }

    /// <summary>Opens <paramref name="count"/> connections to a fresh server and returns its VmRSS growth per connection.</summary>
    public static async Task<(double PerConnection, string Detail)> MeasureAsync(BenchProcesses processes, int count)
    {
        var server = processes.StartDotnet("socket-floor", "Tunnel.Bench.dll", [ServerFlag]);
        var clients = new List<Socket>();
        try
        {
            var port = int.Parse((await server.WaitForLineAsync(ListeningLine(), TimeSpan.FromSeconds(30)).ConfigureAwait(false)).Groups[1].Value, CultureInfo.InvariantCulture);

            // Warm the server's accept and receive paths, as the edge's are warm when it is measured.
            await OpenAsync(port, 20, clients).ConfigureAwait(false);
            foreach (var client in clients)
            {
                client.Dispose();
            }

            clients.Clear();
            await Task.Delay(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            var before = await EdgeBenchmarks.SampleResidentAsync(server, 3).ConfigureAwait(false);
            await OpenAsync(port, count, clients).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(8)).ConfigureAwait(false);
            var after = await EdgeBenchmarks.SampleResidentAsync(server, 5).ConfigureAwait(false);
            return ((after - before) / (double)count, $"{count} idle TCP connections held by a bare .NET Socket server (one byte each way, then a zero-byte receive): VmRSS {before / (double)Workloads.Mib:0.0} MiB before, {after / (double)Workloads.Mib:0.0} MiB after");
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }

            await server.StopAsync().ConfigureAwait(false);
        }
    }

    private static async Task OpenAsync(int port, int count, List<Socket> clients)
    {
        for (var i = 0; i < count; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            clients.Add(socket);
            await socket.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
            await socket.SendAsync(new byte[1], SocketFlags.None).ConfigureAwait(false);
            await socket.ReceiveAsync(new byte[1], SocketFlags.None).ConfigureAwait(false);
        }
    }

    [GeneratedRegex(@"socket floor listening on (\d+)")]
    private static partial Regex ListeningLine();
}
