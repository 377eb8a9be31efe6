using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Tunnels;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Protocol;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// What a client that is not a well-behaved origin gets from the tunnel port: a raw TLS client on a
/// real socket, so each test controls exactly what is sent. Every refusal is logged with its reason,
/// and the edge closes the socket and holds no place for it.
/// </summary>
public class TunnelRefusalTests(ITestOutputHelper output)
{
    // Short bounds so the tests watch the edge enforce them; the assertions allow the loaded machine slack.
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan CloseSlack = TimeSpan.FromSeconds(4);

    [Fact]
    public async Task A_client_offering_another_ALPN_is_refused_in_the_handshake()
    {
        await using var harness = await StartAsync();
        using var certificate = OriginCertificate(harness);
        var error = await Assert.ThrowsAnyAsync<Exception>(() => HandshakeAsync(harness, certificate, [SslApplicationProtocol.Http2]));
        output.WriteLine(error.ToString());

        var refusal = await EdgeLogAsync(harness, "HandshakeFailed");
        output.WriteLine(refusal);
        Assert.Contains("ALPN", refusal, StringComparison.Ordinal);
        AssertNothingHeld(harness);
    }

    [Fact]
    public async Task A_client_offering_no_ALPN_is_refused_after_the_handshake()
    {
        await using var harness = await StartAsync();
        using var certificate = OriginCertificate(harness);
        var (socket, ssl) = await HandshakeAsync(harness, certificate, []);
        using (socket)
        await using (ssl)
        {
            await AssertClosedByEdgeAsync(ssl, CloseSlack);
        }

        Assert.Contains($"did not offer ALPN '{TunnelProtocol.Alpn}'", await EdgeLogAsync(harness, "HandshakeFailed"), StringComparison.Ordinal);
        AssertNothingHeld(harness);
    }

    [Fact]
    public async Task TLS_1_1_is_refused_with_a_protocol_version_alert()
    {
        await using var harness = await StartAsync();

        // The test machine's OpenSSL will not even offer TLS 1.1 from an SslStream client ("no ciphers
        // available" at its security level), so the ClientHello is written by hand: TLS 1.1, two
        // ECDHE-AES-CBC-SHA suites, the groups and point formats those need.
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(harness.Edge.TunnelEndPoint);
        await socket.SendAsync(Tls11ClientHello());
        var reply = new byte[7];
        using (var wait = new CancellationTokenSource(CloseSlack))
        {
            var read = 0;
            while (read < reply.Length)
            {
                var n = await socket.ReceiveAsync(reply.AsMemory(read), SocketFlags.None, wait.Token);
                Assert.True(n > 0, $"the edge closed after {read} bytes without an alert");
                read += n;
            }
        }

        output.WriteLine(Convert.ToHexString(reply));
        Assert.Equal(0x15, reply[0]); // an alert record
        Assert.Equal(2, reply[5]); // fatal
        Assert.Equal(70, reply[6]); // protocol_version
        var refusal = await EdgeLogAsync(harness, "HandshakeFailed");
        output.WriteLine(refusal);
        Assert.Contains("protocol", refusal, StringComparison.OrdinalIgnoreCase);
        AssertNothingHeld(harness);
    }

    private static byte[] Tls11ClientHello()
    {
        var body = new List<byte> { 0x03, 0x02 };
        body.AddRange(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        body.Add(0); // no session id
        body.AddRange([0x00, 0x04, 0xC0, 0x09, 0xC0, 0x13]);
        body.AddRange([0x01, 0x00]); // null compression
        byte[] extensions = [0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17, 0x00, 0x0b, 0x00, 0x02, 0x01, 0x00];
        body.AddRange([0x00, (byte)extensions.Length]);
        body.AddRange(extensions);
        var handshake = new List<byte> { 0x01, 0x00, (byte)(body.Count >> 8), (byte)body.Count };
        handshake.AddRange(body);
        var record = new List<byte> { 0x16, 0x03, 0x02, (byte)(handshake.Count >> 8), (byte)handshake.Count };
        record.AddRange(handshake);
        return [.. record];
    }

    [Fact]
    public async Task Garbage_after_the_handshake_is_refused_as_an_invalid_registration()
    {
        await using var harness = await StartAsync();
        using var certificate = OriginCertificate(harness);
        var (socket, ssl) = await HandshakeAsync(harness, certificate);
        using (socket)
        await using (ssl)
        {
            await ssl.WriteAsync("GET / HTTP/1.1\r\nHost: hello.test\r\n\r\n"u8.ToArray());
            await ssl.FlushAsync();
            await AssertClosedByEdgeAsync(ssl, CloseSlack);
        }

        var refusal = await EdgeLogAsync(harness, "RegistrationRefused");
        Assert.Contains("invalid_registration", refusal, StringComparison.Ordinal);
        AssertNothingHeld(harness);
    }

    [Fact]
    public async Task An_oversized_registration_frame_is_refused_without_reading_it()
    {
        await using var harness = await StartAsync();
        using var certificate = OriginCertificate(harness);
        var (socket, ssl) = await HandshakeAsync(harness, certificate);
        using (socket)
        await using (ssl)
        {
            var header = new byte[9];
            "TUN1"u8.CopyTo(header);
            header[4] = 1;
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), 64 * 1024 * 1024);
            await ssl.WriteAsync(header);
            await ssl.FlushAsync();
            await AssertClosedByEdgeAsync(ssl, CloseSlack);
        }

        var refusal = await EdgeLogAsync(harness, "RegistrationRefused");
        Assert.Contains("invalid_registration", refusal, StringComparison.Ordinal);
        Assert.Contains(TunnelLimits.MaxFrameBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), refusal, StringComparison.Ordinal);
        AssertNothingHeld(harness);
    }

    [Fact]
    public async Task A_registration_frame_never_finished_is_closed_within_the_registration_timeout()
    {
        await using var harness = await StartAsync();
        using var certificate = OriginCertificate(harness);
        var (socket, ssl) = await HandshakeAsync(harness, certificate);
        using (socket)
        await using (ssl)
        {
            var header = new byte[9 + 10];
            "TUN1"u8.CopyTo(header);
            header[4] = 1;
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), 100);
            await ssl.WriteAsync(header);
            await ssl.FlushAsync();
            var stopwatch = Stopwatch.StartNew();
            await AssertClosedByEdgeAsync(ssl, ShortTimeout + CloseSlack);
            output.WriteLine($"closed after {stopwatch.Elapsed.TotalSeconds:0.00} s");
            Assert.True(stopwatch.Elapsed >= ShortTimeout - TimeSpan.FromMilliseconds(100), $"closed after {stopwatch.Elapsed}, before the timeout");
        }

        Assert.Contains("no registration within 1 s", await EdgeLogAsync(harness, "RegistrationRefused"), StringComparison.Ordinal);
        AssertNothingHeld(harness);
    }

    [Fact]
    public async Task A_TLS_handshake_never_started_is_closed_within_the_handshake_timeout()
    {
        await using var harness = await StartAsync();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(harness.Edge.TunnelEndPoint);
        await socket.SendAsync("\x16\x03\x01"u8.ToArray());
        var stopwatch = Stopwatch.StartNew();
        using var wait = new CancellationTokenSource(ShortTimeout + CloseSlack);
        var read = await socket.ReceiveAsync(new byte[16], SocketFlags.None, wait.Token);
        Assert.Equal(0, read);
        output.WriteLine($"closed after {stopwatch.Elapsed.TotalSeconds:0.00} s");
        Assert.Contains("no TLS handshake within 1 s", await EdgeLogAsync(harness, "HandshakeFailed"), StringComparison.Ordinal);
        AssertNothingHeld(harness);
    }

    private static Task<TunnelHarness> StartAsync() => TunnelHarness.StartAsync(o =>
    {
        o.TlsHandshakeTimeout = ShortTimeout;
        o.RegistrationTimeout = ShortTimeout;
    });

    private static X509Certificate2 OriginCertificate(TunnelHarness harness)
    {
        var (certificatePath, keyPath) = harness.Pki.IssueOrigin(TunnelHarness.Hostname);
        return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
    }

    internal static async Task<(Socket Socket, SslStream Ssl)> HandshakeAsync(TunnelHarness harness, X509Certificate2 certificate, List<SslApplicationProtocol>? alpn = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(harness.Edge.TunnelEndPoint);
            return (socket, await AuthenticateAsync(socket, certificate, alpn));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The origin's TLS handshake on a socket connected to the tunnel port, with <paramref name="certificate"/> if any; the edge's certificate is not checked.</summary>
    internal static async Task<SslStream> AuthenticateAsync(Socket socket, X509Certificate2? certificate, List<SslApplicationProtocol>? alpn = null)
    {
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ClientCertificates = certificate is null ? null : [certificate],
            ApplicationProtocols = alpn ?? [new SslApplicationProtocol(TunnelProtocol.Alpn)],
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }, timeout.Token);
        return ssl;
    }

    internal static async Task AssertClosedByEdgeAsync(Stream stream, TimeSpan within)
    {
        using var wait = new CancellationTokenSource(within);
        var buffer = new byte[4096];
        try
        {
            // A refusal frame may come first; the edge then closes.
            while (await stream.ReadAsync(buffer, wait.Token) > 0)
            {
            }
        }
        catch (IOException)
        {
            // Reset by the edge: closed too.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The edge did not close the connection within {within.TotalSeconds:0.#} s.");
        }
    }

    internal static async Task<string> EdgeLogAsync(TunnelHarness harness, string eventName)
    {
        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == eventName), TimeSpan.FromSeconds(10), $"the edge logs {eventName}");
        return string.Join("\n", harness.EdgeLogs.Entries.Where(e => e.EventId.Name == eventName).Select(e => e.Message));
    }

    internal static void AssertNothingHeld(TunnelHarness harness)
    {
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
        Assert.Equal(0, harness.Edge.Services.GetRequiredService<TunnelListener>().TunnelPlaces);
    }
}
