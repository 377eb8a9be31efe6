using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;

namespace Tunnel.Bench;

/// <summary>
/// The workloads on whole connections that no stock client runs the way the rows need, run by this
/// driver: TCP transfers to HelloOrigin's plain TCP service (ByteService) and new TLS connections.
/// </summary>
internal static class ConnectionWorkloads
{
    private const int Buffer = 256 * 1024;

    /// <summary>
    /// One transfer of <paramref name="length"/> bytes over one TCP connection to the app's ByteService:
    /// from the app to the client (<paramref name="download"/>) or from the client to the app. Bytes per
    /// second from connect to the last byte (download) or the service's count (upload); the count is checked.
    /// The client closes first in both directions.
    /// </summary>
    public static async Task<Figure> TcpTransferAsync(TcpSetup setup, bool download, long length)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var buffer = new byte[Buffer];
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, setup.Port, timeout.Token).ConfigureAwait(false);
            var header = new byte[9];
            header[0] = (byte)(download ? 'D' : 'U');
            BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(1), length);
            await socket.SendAsync(header, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            long moved = 0;
            if (download)
            {
                // Up to the length asked, not to the end of the stream: a TCP route does not pass the
                // service's close on to a visitor whose own side is still open (see bench/README.md).
                int read;
                while (moved < length && (read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false)) > 0)
                {
                    moved += read;
                }
            }
            else
            {
                Random.Shared.NextBytes(buffer);
                for (long sent = 0; sent < length;)
                {
                    var count = (int)Math.Min(buffer.Length, length - sent);
                    sent += await socket.SendAsync(buffer.AsMemory(0, count), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                }

                var answer = new byte[8];
                for (var at = 0; at < answer.Length;)
                {
                    var read = await socket.ReceiveAsync(answer.AsMemory(at), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    at += read;
                }

                moved = BinaryPrimitives.ReadInt64BigEndian(answer);
            }

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return moved == length ? new Figure(length / seconds) : Figure.Missing($"{moved} of {length} bytes arrived");
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException)
        {
            return Figure.Missing($"transfer failed: {ex.Message}");
        }
    }

    /// <summary>
    /// New TLS connections per second: <paramref name="parallel"/> loops, each opening a TCP connection,
    /// making a full TLS 1.3 handshake (session resumption off, so no handshake is abbreviated; ALPN
    /// http/1.1), sending one <c>GET /</c> with <c>Connection: close</c> and reading the answer to its
    /// end, again and again for <paramref name="duration"/>. Completed 200 answers per second.
    /// </summary>
    public static async Task<Figure> NewTlsConnectionsAsync(Setup setup, TimeSpan duration, int parallel)
    {
        var request = Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Setups.TlsHostname}\r\nConnection: close\r\n\r\n");
        var completed = 0;
        var failed = 0;
        string? firstFailure = null;
        var started = Stopwatch.GetTimestamp();
        var end = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);

        async Task LoopAsync()
        {
            var buffer = new byte[4096];
            while (Stopwatch.GetTimestamp() < end)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    await socket.ConnectAsync(IPAddress.Loopback, setup.Http1Port, timeout.Token).ConfigureAwait(false);
                    await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
                    await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                    {
                        TargetHost = Setups.TlsHostname,
                        EnabledSslProtocols = SslProtocols.Tls13,
                        ApplicationProtocols = [SslApplicationProtocol.Http11],
                        AllowTlsResume = false,
                        RemoteCertificateValidationCallback = (_, _, _, _) => true,
                    }, timeout.Token).ConfigureAwait(false);
                    await ssl.WriteAsync(request, timeout.Token).ConfigureAwait(false);
                    // Read to the end of the answer by its length, not to the end of the stream: a
                    // passthrough route does not pass the app's close on to a visitor whose own side is
                    // still open (see bench/README.md); the client closes first.
                    var answer = new StringBuilder();
                    int read;
                    while (!AnswerComplete(answer.ToString()) && (read = await ssl.ReadAsync(buffer, timeout.Token).ConfigureAwait(false)) > 0)
                    {
                        answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
                    }

                    if (answer.ToString().StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref completed);
                    }
                    else
                    {
                        Interlocked.Increment(ref failed);
                        Interlocked.CompareExchange(ref firstFailure, "answered " + answer.ToString().Split('\r')[0], null);
                    }
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException or AuthenticationException)
                {
                    Interlocked.Increment(ref failed);
                    Interlocked.CompareExchange(ref firstFailure, ex.Message, null);

                    // A setup that refuses at once must not turn the loop into a busy spin.
                    await Task.Delay(10).ConfigureAwait(false);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, parallel).Select(_ => Task.Run(LoopAsync))).ConfigureAwait(false);
        return Result(completed, failed, firstFailure, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private static Figure Result(int completed, int failed, string? firstFailure, double seconds)
    {
        if (completed == 0)
        {
            return Figure.Missing("no connection completed: " + firstFailure);
        }

        return new Figure(completed / seconds, failed > 0 ? $"{failed} failed: {firstFailure}" : null);
    }

    /// <summary>Whether an HTTP/1.1 answer is whole: its head and a body of its Content-Length, or a chunked body's last chunk.</summary>
    internal static bool AnswerComplete(string answer)
    {
        var headEnd = answer.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (headEnd < 0)
        {
            return false;
        }

        foreach (var line in answer[..headEnd].Split("\r\n"))
        {
            if (line.StartsWith("content-length:", StringComparison.OrdinalIgnoreCase)
                && int.TryParse(line["content-length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture, out var length))
            {
                return answer.Length - headEnd - 4 >= length;
            }
        }

        return answer.EndsWith("0\r\n\r\n", StringComparison.Ordinal);
    }
}
