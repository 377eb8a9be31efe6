using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Transport;

namespace Tunnel.Bench;

/// <summary>
/// The edge's memory per open passthrough visitor connection: a fresh edge, an origin in this process
/// (the real plugin, 4 tunnel connections) declaring one HTTP passthrough and one TLS passthrough
/// hostname; <c>count</c> visitor connections of each mode opened and left idle after one request
/// (HTTP: a keep-alive connection after its first answer; TLS: after the handshake and one answer);
/// the edge's VmRSS before and after each batch, divided by the count.
/// </summary>
internal sealed class PassthroughMemory(BenchProcesses processes, Pki pki)
{
    private static readonly byte[] HttpRequest = Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Setups.PassthroughHostname}\r\n\r\n");
    private static readonly byte[] TlsRequest = Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Setups.TlsHostname}\r\n\r\n");

    /// <summary>Per connection in bytes, HTTP passthrough then TLS passthrough, with what each figure rests on.</summary>
    public async Task<((double Http, string HttpDetail), (double Tls, string TlsDetail))> MeasureAsync(int count)
    {
        var edge = await EdgeNode.StartAsync(processes, pki, "passthrough-memory-edge", passthrough: true).ConfigureAwait(false);
        using var certificate = X509Certificate2.CreateFromPemFile(pki.SiteCertificate, pki.SiteKey);
        var app = await StartOriginAsync(edge, certificate).ConfigureAwait(false);
        var held = new List<Stream>();
        try
        {
            await edge.WaitForTunnelsAsync(4, TimeSpan.FromSeconds(60)).ConfigureAwait(false);

            // Warm the edge's paths of both modes (JIT, pools) with connections opened and closed, so
            // that the figures hold what stays per connection, not the first use's one-off growth.
            var warm = new List<Stream>();
            for (var round = 0; round < 2; round++)
            {
                await OpenHttpAsync(edge, 50, warm).ConfigureAwait(false);
                await OpenTlsAsync(edge, 50, warm).ConfigureAwait(false);
                foreach (var stream in warm)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                }

                warm.Clear();
            }

            await Task.Delay(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            var before = await EdgeBenchmarks.SampleResidentAsync(edge.Process, 3).ConfigureAwait(false);
            await OpenHttpAsync(edge, count, held).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(8)).ConfigureAwait(false);
            var afterHttp = await EdgeBenchmarks.SampleResidentAsync(edge.Process, 5).ConfigureAwait(false);
            await OpenTlsAsync(edge, count, held).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(8)).ConfigureAwait(false);
            var afterTls = await EdgeBenchmarks.SampleResidentAsync(edge.Process, 5).ConfigureAwait(false);
            var open = EdgeNode.MetricSum(await edge.ScrapeAsync().ConfigureAwait(false), "tunnel_edge_route_connections_open");
            var http = (afterHttp - before) / (double)count;
            var tls = (afterTls - afterHttp) / (double)count;
            return ((http, $"{count} HTTP/1.1 keep-alive connections, idle after one GET: edge VmRSS {Mib(before)} before, {Mib(afterHttp)} after"),
                (tls, $"then {count} TLS 1.3 passthrough connections, idle after the handshake (ended in the app) and one GET: edge VmRSS {Mib(afterTls)}; the edge counted {open:0} open passthrough connections"));
        }
        finally
        {
            foreach (var stream in held)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            await app.DisposeAsync().ConfigureAwait(false);
            await edge.Process.StopAsync().ConfigureAwait(false);
        }
    }

    private static string Mib(long bytes) => (bytes / (double)Workloads.Mib).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " MiB";

    private static async Task OpenHttpAsync(EdgeNode edge, int count, List<Stream> held)
    {
        for (var i = 0; i < count; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await ConnectAsync(socket, edge.VisitorPort).ConfigureAwait(false);
            var stream = new NetworkStream(socket, ownsSocket: true);
            held.Add(stream);
            await ExchangeAsync(stream, HttpRequest).ConfigureAwait(false);
        }
    }

    private static async Task OpenTlsAsync(EdgeNode edge, int count, List<Stream> held)
    {
        for (var i = 0; i < count; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await ConnectAsync(socket, edge.VisitorHttpsPort).ConfigureAwait(false);
            var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true));
            held.Add(ssl);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = Setups.TlsHostname,
                EnabledSslProtocols = SslProtocols.Tls13,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }).ConfigureAwait(false);
            await ExchangeAsync(ssl, TlsRequest).ConfigureAwait(false);
        }
    }

    /// <summary>Connects (a NetworkStream needs a connected socket); the socket is disposed when that fails.</summary>
    private static async Task ConnectAsync(Socket socket, int port)
    {
        try
        {
            await socket.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>One request and its answer ("hello"), bounded in time.</summary>
    private static async Task ExchangeAsync(Stream stream, byte[] request)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.WriteAsync(request, timeout.Token).ConfigureAwait(false);
        var buffer = new byte[4096];
        var answer = new StringBuilder();
        while (!answer.ToString().Contains("hello\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException($"The connection ended before its answer: {answer}");
            }

            answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        if (!answer.ToString().StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
        {
            throw new IOException("Answered " + answer.ToString().Split('\r')[0]);
        }
    }

    /// <summary>The origin: the real plugin, both passthrough hostnames, one-line app.</summary>
    private async Task<WebApplication> StartOriginAsync(EdgeNode edge, X509Certificate2 certificate)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseTunnelTransport(o =>
        {
            o.Edges.Clear();
            o.Edges.Add($"127.0.0.1:{edge.TunnelPort}");
            o.Hostnames.Add(Setups.Hostname);
            o.CertificatePath = pki.OriginCertificate;
            o.CertificateKeyPath = pki.OriginKey;
            o.EdgeCaPath = pki.CaCertificate;
            o.EdgeServerName = "localhost";
            o.KeepUrlListeners = false;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Every passthrough connection is a stream on a tunnel connection: room for both batches
            // beyond Kestrel's default of 100 streams per HTTP/2 connection.
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
            kestrel.ListenTunnel(Setups.PassthroughHostname, TunnelMode.HttpPassthrough);
            kestrel.ListenTunnel(Setups.TlsHostname, TunnelMode.TlsPassthrough, listen => listen.UseHttps(certificate));
        });
        var app = builder.Build();
        app.MapGet("/", () => "hello\n");
        await app.StartAsync().ConfigureAwait(false);
        return app;
    }
}
