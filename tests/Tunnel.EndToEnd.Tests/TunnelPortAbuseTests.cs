using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Tunnels;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Clients of the tunnel port that have proved nothing yet (no registration, maybe no certificate): the
/// handshakes they can hold are capped, per address and in all, and what they announce is not allocated
/// before it arrives. Raw sockets and TLS from chosen loopback addresses, a real edge, a real origin.
/// </summary>
public class TunnelPortAbuseTests(ITestOutputHelper output)
{
    // Another loopback address, so the edge sees the attacker apart from the origin (127.0.0.1).
    private static readonly IPAddress Attacker = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress SecondAttacker = IPAddress.Parse("127.0.0.3");

    // Longer than the test: a stalled socket the edge kept would still be open when the test looks.
    private static readonly TimeSpan LongTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan CloseWithin = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Stalled_sockets_from_one_address_hold_only_its_handshake_share_and_an_origin_elsewhere_still_registers()
    {
        const int PerAddress = 4;
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.MaxTunnelHandshakesPerAddress = PerAddress;
            o.MaxTunnelHandshakes = 64;
            o.TlsHandshakeTimeout = LongTimeout;
            o.RegistrationTimeout = LongTimeout;
        });
        var listener = harness.Edge.Services.GetRequiredService<TunnelListener>();
        using var certificate = OriginCertificate(harness);
        List<IDisposable> held = [];
        try
        {
            // Its share: TLS completed with a valid certificate, then no registration.
            for (var i = 0; i < PerAddress; i++)
            {
                var (socket, ssl) = await HandshakeFromAsync(harness, Attacker, certificate);
                held.Add(ssl);
                held.Add(socket);
            }

            await Wait.UntilAsync(() => listener.HandshakesInFlight == PerAddress, TimeSpan.FromSeconds(10), $"{PerAddress} handshakes in flight");

            // Then sockets that connect and never say a word: every one is reset at once.
            var stopwatch = Stopwatch.StartNew();
            for (var i = 0; i < 20; i++)
            {
                await AssertRefusedAsync(harness, Attacker);
            }

            output.WriteLine($"20 sockets over the cap closed within {stopwatch.Elapsed.TotalSeconds:0.00} s");
            Assert.Equal(PerAddress, listener.HandshakesInFlight);
            await Assert.ThrowsAnyAsync<Exception>(() => HandshakeFromAsync(harness, Attacker, certificate));

            // A real origin from another address registers all its connections and serves, while the
            // attacker still holds its share.
            await harness.StartOriginAsync();
            using var visitor = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/");
            request.Headers.Host = TunnelHarness.Hostname;
            using var response = await visitor.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(PerAddress, listener.HandshakesInFlight);

            var refusals = harness.EdgeLogs.Entries.Where(e => e.EventId.Name == "TunnelHandshakeRefused").ToArray();
            Assert.InRange(refusals.Length, 1, 3); // Rate-limited: a line per 5 s, not one per refusal.
            Assert.Contains("127.0.0.2", refusals[0].Message, StringComparison.Ordinal);
            var metrics = await MetricsAsync(harness);
            Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_handshakes_refused_total", ("reason", "handshakes_in_flight_per_address")) >= 21, metrics);
        }
        finally
        {
            held.ForEach(h => h.Dispose());
        }

        // Everything the attacker held is given back once it leaves.
        await Wait.UntilAsync(() => listener.HandshakesInFlight == 0, TimeSpan.FromSeconds(10), "no handshake in flight");
    }

    [Fact]
    public async Task Handshakes_in_flight_never_pass_the_edges_cap_whatever_the_addresses()
    {
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.MaxTunnelHandshakesPerAddress = 4;
            o.MaxTunnelHandshakes = 6;
            o.TlsHandshakeTimeout = LongTimeout;
        });
        var listener = harness.Edge.Services.GetRequiredService<TunnelListener>();
        List<Socket> sockets = [];
        try
        {
            foreach (var from in new[] { Attacker, Attacker, Attacker, Attacker, SecondAttacker, SecondAttacker })
            {
                sockets.Add(await ConnectFromAsync(harness, from));
            }

            await Wait.UntilAsync(() => listener.HandshakesInFlight == 6, TimeSpan.FromSeconds(10), "6 handshakes in flight");
            await AssertRefusedAsync(harness, SecondAttacker);
            await AssertRefusedAsync(harness, IPAddress.Loopback);

            Assert.Equal(6, listener.HandshakesInFlight);
            var metrics = await MetricsAsync(harness);
            Assert.Equal(2, EdgeCluster.Series(metrics, "tunnel_edge_handshakes_refused_total", ("reason", "handshakes_in_flight")));
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }

        await Wait.UntilAsync(() => listener.HandshakesInFlight == 0, TimeSpan.FromSeconds(10), "no handshake in flight");
    }

    [Fact]
    public async Task A_client_without_a_certificate_announcing_the_largest_registration_is_refused_at_its_header()
    {
        // The default registration timeout (10 s): an edge that waited for the announced body would answer only then.
        await using var harness = await TunnelHarness.StartAsync();
        var (socket, ssl) = await HandshakeFromAsync(harness, Attacker, certificate: null);
        using (socket)
        await using (ssl)
        {
            var header = new byte[RegistrationCodec.HeaderLength];
            "TUN1"u8.CopyTo(header);
            header[4] = 1;
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), TunnelLimits.MaxFrameBodyBytes);
            await ssl.WriteAsync(header);
            await ssl.FlushAsync();

            var stopwatch = Stopwatch.StartNew();
            using var within = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            var response = await RegistrationCodec.ReadResponseAsync(ssl, within.Token);
            output.WriteLine($"refused after {stopwatch.Elapsed.TotalSeconds:0.00} s: {response.Rejected?.Message}");
            Assert.Equal(RejectionCodes.CertificateRefused, response.Rejected?.Code);
            await TunnelRefusalTests.AssertClosedByEdgeAsync(ssl, CloseWithin);
        }

        Assert.Contains("no client certificate", await TunnelRefusalTests.EdgeLogAsync(harness, "RegistrationRefused"), StringComparison.Ordinal);
        TunnelRefusalTests.AssertNothingHeld(harness);
        await Wait.UntilAsync(() => harness.Edge.Services.GetRequiredService<TunnelListener>().HandshakesInFlight == 0, TimeSpan.FromSeconds(5), "no handshake in flight");
    }

    private static X509Certificate2 OriginCertificate(TunnelHarness harness)
    {
        var (certificatePath, keyPath) = harness.Pki.IssueOrigin(TunnelHarness.Hostname);
        return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
    }

    private static async Task<Socket> ConnectFromAsync(TunnelHarness harness, IPAddress from)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(from, 0));
            await socket.ConnectAsync(harness.Edge.TunnelEndPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<(Socket Socket, SslStream Ssl)> HandshakeFromAsync(TunnelHarness harness, IPAddress from, X509Certificate2? certificate)
    {
        var socket = await ConnectFromAsync(harness, from);
        try
        {
            return (socket, await TunnelRefusalTests.AuthenticateAsync(socket, certificate));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Connects and expects the edge to reset the socket (maybe before the connect returns) within <see cref="CloseWithin"/>.</summary>
    private static async Task AssertRefusedAsync(TunnelHarness harness, IPAddress from)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(from, 0));
        using var wait = new CancellationTokenSource(CloseWithin);
        try
        {
            await socket.ConnectAsync(harness.Edge.TunnelEndPoint, wait.Token);
            var read = await socket.ReceiveAsync(new byte[16], SocketFlags.None, wait.Token);
            Assert.Equal(0, read);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Reset by the edge: refused at once.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The edge did not close the connection within {CloseWithin.TotalSeconds:0.#} s.");
        }
    }

    private static async Task<string> MetricsAsync(TunnelHarness harness)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await client.GetStringAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics");
    }
}
