using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Tunnel.EndToEnd.Tests.Passthrough;

/// <summary>
/// What real clients send first, captured from a loopback socket that never answers: the ClientHello of
/// .NET's own TLS client, and the first flight of its HTTP/1.1 and HTTP/2 clients.
/// </summary>
internal static class FirstBytesCapture
{
    /// <summary>The first bytes a client writes to a listening socket, read until it pauses.</summary>
    public static async Task<byte[]> CaptureAsync(Func<IPEndPoint, CancellationToken, Task> client)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var clientTask = Task.Run(async () =>
        {
            try
            {
                await client((IPEndPoint)listener.LocalEndpoint, stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException or System.Security.Authentication.AuthenticationException)
            {
            }
        });

        using var accepted = await listener.AcceptSocketAsync(stop.Token);
        var captured = new MemoryStream();
        var buffer = new byte[64 * 1024];

        // Read until the client has said all it says before waiting for an answer.
        while (true)
        {
            using var pause = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
            pause.CancelAfter(TimeSpan.FromMilliseconds(captured.Length == 0 ? 5000 : 300));
            int read;
            try
            {
                read = await accepted.ReceiveAsync(buffer, SocketFlags.None, pause.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            if (read == 0)
            {
                break;
            }

            captured.Write(buffer, 0, read);
        }

        await stop.CancelAsync();
        accepted.Dispose();
        await clientTask;
        return captured.ToArray();
    }

    /// <summary>The ClientHello of <see cref="SslStream"/> asking for <paramref name="serverName"/> with ALPN h2 and http/1.1.</summary>
    public static Task<byte[]> ClientHelloAsync(string serverName) => CaptureAsync(async (endPoint, cancellationToken) =>
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endPoint, cancellationToken);
        using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }, cancellationToken);
    });

    /// <summary>What <see cref="HttpClient"/> sends first for a GET of <paramref name="url"/> over a loopback socket, in the given HTTP version (2.0 is prior knowledge).</summary>
    public static Task<byte[]> RequestAsync(string url, Version version) => CaptureAsync(async (endPoint, cancellationToken) =>
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(endPoint, token);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.Add("X-Large", new string('x', 200));
        await client.SendAsync(request, cancellationToken);
    });
}
