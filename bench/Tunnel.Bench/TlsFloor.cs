using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;

namespace Tunnel.Bench;

/// <summary>
/// The memory row's baseline: what an idle TLS connection costs by itself, with the tunnel's TLS setup
/// (TLS 1.3, the edge's certificate, a client certificate required, ALPN) and nothing on top: no HTTP/2,
/// no registration. The server runs as a process of its own (this driver with <c>--tls-floor-server</c>)
/// so its resident set holds only the server side; each connection carries one byte each way (as a
/// registration and its answer would) and then waits in a zero-byte read, which holds no buffer. The
/// second floor sets OpenSSL's release-buffers mode after the handshake, as the edge does.
/// </summary>
internal static partial class TlsFloor
{
    public const string ServerFlag = "--tls-floor-server";

    /// <summary>The server process's body: listen, print the port, hold every connection until killed.</summary>
    public static async Task<int> ServeAsync(string certificate, string key, bool releaseBuffers)
    {
        using var loaded = X509Certificate2.CreateFromPemFile(certificate, key);
        using var exportable = X509CertificateLoader.LoadPkcs12(loaded.Export(X509ContentType.Pkcs12), null);
        var context = SslStreamCertificateContext.Create(exportable, additionalCertificates: null);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(2048);
        Console.WriteLine($"tls floor listening on {((IPEndPoint)listener.LocalEndPoint!).Port}");
        var held = new List<SslStream>();
        while (true)
        {
            var socket = await listener.AcceptAsync().ConfigureAwait(false);
            _ = HoldAsync(socket);
        }

        async Task HoldAsync(Socket socket)
        {
            socket.NoDelay = true;
            var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
            try
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = context,
                    ClientCertificateRequired = true,
                    RemoteCertificateValidationCallback = (_, peer, _, _) => peer is not null,
                    ApplicationProtocols = [new SslApplicationProtocol("tunnel/1")],
                    EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13,
                }).ConfigureAwait(false);
                if (releaseBuffers && !Tunnel.Edge.Tunnels.TlsBufferRelease.TryApply(ssl, out var problem) && problem is not null)
                {
                    Console.WriteLine($"record buffers kept: {problem}");
                }

                lock (held)
                {
                    held.Add(ssl);
                }

                // One byte each way, as a registration and its answer: the connection has carried
                // application data, which is when OpenSSL lets released buffers go.
                var one = new byte[1];
                await ssl.ReadExactlyAsync(one).ConfigureAwait(false);
                await ssl.WriteAsync(one).ConfigureAwait(false);
                await ssl.ReadAsync(Memory<byte>.Empty).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
            {
                await ssl.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Opens <paramref name="count"/> TLS connections to a fresh server and returns its VmRSS growth per connection.</summary>
    public static async Task<(double PerConnection, string Detail)> MeasureAsync(BenchProcesses processes, Pki pki, int count, bool releaseBuffers, Func<BenchProcess, int, Task<long>> sampleResident)
    {
        var server = processes.StartDotnet("tls-floor", "Tunnel.Bench.dll", [ServerFlag, Path.Combine(pki.Directory, "edge.pem"), Path.Combine(pki.Directory, "edge.key"), releaseBuffers ? "release" : "keep"]);
        var clients = new List<SslStream>();
        try
        {
            var port = int.Parse((await server.WaitForLineAsync(ListeningLine(), TimeSpan.FromSeconds(30)).ConfigureAwait(false)).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            await Task.Delay(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            var before = await sampleResident(server, 3).ConfigureAwait(false);
            using var certificate = X509Certificate2.CreateFromPemFile(pki.OriginCertificate, pki.OriginKey);
            using var trusted = X509CertificateLoader.LoadCertificateFromFile(pki.CaCertificate);
            for (var i = 0; i < count; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
                var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
                clients.Add(ssl);
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = "localhost",
                    ClientCertificates = [certificate],
                    ApplicationProtocols = [new SslApplicationProtocol("tunnel/1")],
                    RemoteCertificateValidationCallback = (_, _, _, _) => true,
                }).ConfigureAwait(false);
                await ssl.WriteAsync(new byte[1]).ConfigureAwait(false);
                await ssl.ReadExactlyAsync(new byte[1]).ConfigureAwait(false);
            }

            // The same settling time as the tunnel row.
            await Task.Delay(TimeSpan.FromSeconds(8)).ConfigureAwait(false);
            var after = await sampleResident(server, 5).ConfigureAwait(false);
            return ((after - before) / (double)count, $"{count} idle TLS 1.3 connections (client certificate, ALPN, one byte each way, no HTTP/2) held by a bare SslStream server{(releaseBuffers ? " with SSL_MODE_RELEASE_BUFFERS" : "")}: VmRSS {before / Workloads.Mib:0.0} MiB before, {after / Workloads.Mib:0.0} MiB after");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync().ConfigureAwait(false);
            }

            await server.StopAsync().ConfigureAwait(false);
        }
    }

    [GeneratedRegex(@"tls floor listening on (\d+)")]
    private static partial Regex ListeningLine();
}
