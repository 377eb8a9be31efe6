using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Tunnel.Edge.Access;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Visitors that hold what the edge gives them without using it: silent sockets, half a preface, a TLS
/// socket that never says hello, more connections than one address should have, and one visitor
/// holding a site's tunnel streams with long requests. Real sockets, real TLS, a real edge and origin.
/// </summary>
public class HostileVisitorTests(ITestOutputHelper output)
{
    private const string Host = TunnelHarness.Hostname;

    // Short bounds so the tests take seconds; the code paths are the defaults' paths.
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(2);

    // What "within the timeout" allows on a loaded 2-core machine: Kestrel's heartbeat ticks once a
    // second, and sockets are checked after one another.
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(3);

    private static readonly IPAddress OtherVisitor = IPAddress.Parse("127.0.0.2");

    [Fact]
    public async Task Silent_and_partial_preface_sockets_on_both_visitor_ports_are_closed_within_the_request_headers_timeout()
    {
        using var sites = new TestPki();
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [sites.IssueSite("site", Host)];
            o.Limits.RequestHeadersTimeout = ShortTimeout;
            o.Limits.TlsHandshakeTimeout = ShortTimeout;
        });
        await harness.StartOriginAsync();
        var http = harness.Edge.VisitorEndPoint;
        var https = harness.Edge.VisitorHttpsEndPoint!;
        var partialPreface = "PRI * HTTP/2.0\r\n"u8.ToArray();

        var started = Stopwatch.GetTimestamp();
        var held = new List<(string What, Stream Stream)>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                held.Add(("silent on the HTTP port", await RawAsync(http, IPAddress.Loopback, null)));
                held.Add(("partial preface on the HTTP port", await RawAsync(http, IPAddress.Loopback, partialPreface)));
                held.Add(("no ClientHello on the HTTPS port", await RawAsync(https, IPAddress.Loopback, null)));
                held.Add(("partial preface in clear on the HTTPS port", await RawAsync(https, IPAddress.Loopback, partialPreface)));
                held.Add(("silent after the TLS handshake (h2)", await TlsAsync(https, sites, SslApplicationProtocol.Http2, null)));
                held.Add(("silent after the TLS handshake (http/1.1)", await TlsAsync(https, sites, SslApplicationProtocol.Http11, null)));
                held.Add(("partial preface over TLS (h2)", await TlsAsync(https, sites, SslApplicationProtocol.Http2, partialPreface)));
            }

            var closed = await Task.WhenAll(held.Select(h => ClosedByEdgeWithinAsync(h.Stream, ShortTimeout + Slack)));
            var slowest = Stopwatch.GetElapsedTime(started);
            output.WriteLine($"{held.Count} sockets, all closed by the edge after {slowest.TotalSeconds:0.0} s (timeout {ShortTimeout.TotalSeconds:0} s)");
            var open = held.Zip(closed).Where(p => !p.Second).Select(p => p.First.What).Distinct().ToArray();
            Assert.True(open.Length == 0, $"still open after {(ShortTimeout + Slack).TotalSeconds:0} s: {string.Join("; ", open)}");
        }
        finally
        {
            held.ForEach(h => h.Stream.Dispose());
        }

        // Counted and logged (one line for the lot), and the edge still serves.
        var metrics = await MetricsAsync(harness);
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_visitor_refused_total", ("reason", "first_bytes_timeout")) >= 20, metrics);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "VisitorConnectionRefused" && e.Message.Contains("RequestHeadersTimeout", StringComparison.Ordinal));
        using var client = VisitorClient(harness, IPAddress.Loopback);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(harness.VisitorUrl("/"))).StatusCode);
    }

    [Fact]
    public async Task Connections_over_the_per_address_cap_are_refused_on_both_ports_while_another_address_is_served()
    {
        using var sites = new TestPki();
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [sites.IssueSite("site", Host)];
            o.Limits.MaxConnectionsPerVisitor = 4;
        });
        await harness.StartOriginAsync();
        var held = new List<Stream>();
        try
        {
            // Two on each port from 127.0.0.1: the cap counts both ports together.
            for (var i = 0; i < 2; i++)
            {
                held.Add(await RawAsync(harness.Edge.VisitorEndPoint, IPAddress.Loopback, Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Host}\r\n")));
                held.Add(await TlsAsync(harness.Edge.VisitorHttpsEndPoint!, sites, SslApplicationProtocol.Http11, null));
            }

            await EdgeCluster.UntilAsync(async () => await CountOpenAsync(harness) >= 4, TimeSpan.FromSeconds(5), "the edge counts the four connections");

            // The fifth, on either port, is closed at once.
            using (var fifth = await RawAsync(harness.Edge.VisitorEndPoint, IPAddress.Loopback, null))
            {
                Assert.True(await ClosedByEdgeWithinAsync(fifth, TimeSpan.FromSeconds(2)), "a fifth connection to the HTTP port stays open");
            }

            await Assert.ThrowsAnyAsync<Exception>(async () => (await TlsAsync(harness.Edge.VisitorHttpsEndPoint!, sites, SslApplicationProtocol.Http11, null)).Dispose());

            // Another address is served on both ports meanwhile.
            using var other = VisitorClient(harness, OtherVisitor);
            Assert.Equal(HttpStatusCode.OK, (await other.GetAsync(harness.VisitorUrl("/"))).StatusCode);
            var viaTls = await Cli.RunAsync("curl", ["-sS", "--fail", "--interface", "127.0.0.2", "--resolve", $"{Host}:{harness.Edge.VisitorHttpsEndPoint!.Port}:127.0.0.1",
                "--cacert", sites.CaPath, $"https://{Host}:{harness.Edge.VisitorHttpsEndPoint!.Port}/"], TimeSpan.FromSeconds(20));
            Assert.True(viaTls.ExitCode == 0, Cli.Describe(viaTls));
        }
        finally
        {
            held.ForEach(s => s.Dispose());
        }

        var metrics = await MetricsAsync(harness);
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_visitor_refused_total", ("reason", "visitor_connection_limit")) >= 2, metrics);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "VisitorConnectionRefused" && e.Message.Contains("MaxConnectionsPerVisitor", StringComparison.Ordinal));

        // Once its connections close, the address is served again.
        using var client = VisitorClient(harness, IPAddress.Loopback);
        await EdgeCluster.UntilAsync(async () => await CountOpenAsync(harness) <= 1, TimeSpan.FromSeconds(10), "the held connections are no longer counted");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(harness.VisitorUrl("/"))).StatusCode);
    }

    [Fact]
    public async Task Connections_over_the_total_cap_are_refused_from_any_address()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Limits.MaxConcurrentConnections = 3);
        await harness.StartOriginAsync();
        var held = new List<Stream>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                held.Add(await RawAsync(harness.Edge.VisitorEndPoint, IPAddress.Loopback, Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Host}\r\n")));
            }

            await EdgeCluster.UntilAsync(async () => await CountOpenAsync(harness) >= 3, TimeSpan.FromSeconds(5), "the edge counts the three connections");
            using var fourth = await RawAsync(harness.Edge.VisitorEndPoint, OtherVisitor, null);
            Assert.True(await ClosedByEdgeWithinAsync(fourth, TimeSpan.FromSeconds(2)), "a fourth connection stays open");
        }
        finally
        {
            held.ForEach(s => s.Dispose());
        }

        var metrics = await MetricsAsync(harness);
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_visitor_refused_total", ("reason", "connection_limit")) >= 1, metrics);
    }

    [Fact]
    public async Task One_visitor_holding_event_streams_gets_503_past_its_share_of_a_site_while_another_visitor_is_served()
    {
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.Limits.MaxConcurrentRequestsPerVisitor = 3;
            o.Limits.StreamWaitTimeout = TimeSpan.FromSeconds(1);
        });
        await harness.StartOriginAsync();
        using var holder = VisitorClient(harness, IPAddress.Loopback);
        var streams = new List<HttpResponseMessage>();
        try
        {
            // Event streams that would run for 1,000 s: each holds a tunnel stream as long as it is open.
            for (var i = 0; i < 3; i++)
            {
                streams.Add(await holder.GetAsync(harness.VisitorUrl("/stream?count=10000"), HttpCompletionOption.ResponseHeadersRead));
                Assert.Equal(HttpStatusCode.OK, streams[^1].StatusCode);
            }

            var started = Stopwatch.GetTimestamp();
            using var refused = await holder.SendAsync(Json(harness.VisitorUrl("/")));
            var waited = Stopwatch.GetElapsedTime(started);
            output.WriteLine($"the fourth request of the holder: {(int)refused.StatusCode} after {waited.TotalSeconds:0.00} s");
            (await ReadAsync(refused)).AssertEdgeError(503, Host, harness.EdgeLogs);
            Assert.True(refused.Headers.RetryAfter?.Delta is { } retry && retry >= TimeSpan.FromSeconds(1), "503 carries Retry-After");
            Assert.InRange(waited, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));

            // Another visitor of the same site is served at once.
            using var other = VisitorClient(harness, OtherVisitor);
            started = Stopwatch.GetTimestamp();
            Assert.Equal(HttpStatusCode.OK, (await other.GetAsync(harness.VisitorUrl("/"))).StatusCode);
            Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(1), "the other visitor waited");

            // One stream ends: the holder's next request goes through.
            streams[0].Dispose();
            await EdgeCluster.UntilAsync(async () => (await holder.GetAsync(harness.VisitorUrl("/"))).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "the holder is served again");
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
        }

        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "VisitorRequestsOverCap");
        var metrics = await MetricsAsync(harness);
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_visitor_refused_total", ("reason", "visitor_request_limit")) >= 1, metrics);
    }

    [Fact]
    public async Task A_hosts_entry_overrides_the_cap_of_requests_in_flight_per_visitor()
    {
        const string Capped = "capped.test";
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.Limits.MaxConcurrentRequestsPerVisitor = 1;
            o.Limits.StreamWaitTimeout = TimeSpan.FromSeconds(0.5);
            o.Hosts[Host] = new EdgeHostOptions { MaxConcurrentRequestsPerVisitor = 0 };
        });
        await harness.StartOriginAsync(hostnames: [Host, Capped]);
        using var client = VisitorClient(harness, IPAddress.Loopback);
        var streams = new List<HttpResponseMessage>();
        try
        {
            // No cap for the host with the entry: three long requests and a fourth are all served.
            for (var i = 0; i < 3; i++)
            {
                streams.Add(await client.GetAsync(harness.VisitorUrl("/stream?count=10000"), HttpCompletionOption.ResponseHeadersRead));
            }

            Assert.All(streams, s => Assert.Equal(HttpStatusCode.OK, s.StatusCode));
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(harness.VisitorUrl("/"))).StatusCode);

            // The global cap of one for the other host.
            streams.Add(await client.GetAsync(harness.VisitorUrl("/stream?count=10000", Capped), HttpCompletionOption.ResponseHeadersRead));
            Assert.Equal(HttpStatusCode.OK, streams[^1].StatusCode);
            using var refused = await client.SendAsync(Json(harness.VisitorUrl("/", Capped)));
            (await ReadAsync(refused)).AssertEdgeError(503, Capped, harness.EdgeLogs);
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task A_burst_over_the_visitor_cap_waits_for_the_visitors_own_requests_and_is_served()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Limits.MaxConcurrentRequestsPerVisitor = 2);
        await harness.StartOriginAsync();
        using var client = VisitorClient(harness, IPAddress.Loopback);
        var answers = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => client.GetAsync(harness.VisitorUrl("/"))));
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
    }

    [Fact]
    public async Task A_request_finding_every_tunnel_stream_busy_gets_503_with_Retry_After_after_the_stream_wait()
    {
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.Limits.MaxConcurrentRequestsPerVisitor = null;
            o.Limits.StreamWaitTimeout = TimeSpan.FromSeconds(1);
        });

        // One tunnel connection whose origin allows 5 streams: the edge keeps at most 4 open, one of them
        // the connection's heartbeat stream.
        await harness.StartOriginAsync(configureTunnel: t => t.HaConnections = 1,
            configureBuilder: b => b.WebHost.ConfigureKestrel(k => k.Limits.Http2.MaxStreamsPerConnection = 5));
        using var holder = VisitorClient(harness, IPAddress.Loopback);
        var streams = new List<HttpResponseMessage>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                streams.Add(await holder.GetAsync(harness.VisitorUrl("/stream?count=10000"), HttpCompletionOption.ResponseHeadersRead));
                Assert.Equal(HttpStatusCode.OK, streams[^1].StatusCode);
            }

            using var other = VisitorClient(harness, OtherVisitor);
            var started = Stopwatch.GetTimestamp();
            using var refused = await other.SendAsync(Json(harness.VisitorUrl("/")));
            var waited = Stopwatch.GetElapsedTime(started);
            output.WriteLine($"a request to a site whose streams are all held: {(int)refused.StatusCode} after {waited.TotalSeconds:0.00} s");
            (await ReadAsync(refused)).AssertEdgeError(503, Host, harness.EdgeLogs);
            Assert.True(refused.Headers.RetryAfter?.Delta is { } retry && retry >= TimeSpan.FromSeconds(1), "503 carries Retry-After");
            Assert.InRange(waited, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
            Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "StreamWaitTimedOut");

            // The connection was full, not broken: once a stream ends the site serves again.
            streams[0].Dispose();
            await EdgeCluster.UntilAsync(async () => (await other.GetAsync(harness.VisitorUrl("/"))).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "the site serves again");
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
        }

        var metrics = await MetricsAsync(harness);
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_upstream_errors_total", ("error.type", "refused")) >= 1
            || EdgeCluster.Series(metrics, "tunnel_edge_upstream_errors_total", ("error_type", "refused")) >= 1, metrics);
    }

    [Fact]
    public async Task A_WebSocket_silent_both_ways_is_closed_after_the_idle_timeout_while_a_talking_one_stays_open()
    {
        // 2 s, well over the talking socket's 300 ms between messages: on a loaded machine (the test
        // assemblies run side by side) a gap of a second between two messages was seen, which at 1 s
        // closed the talking socket too.
        var idleTimeout = TimeSpan.FromSeconds(2);
        await using var harness = await TunnelHarness.StartAsync(o => o.Limits.WebSocketIdleTimeout = idleTimeout);
        await harness.StartOriginAsync();
        using var invoker = VisitorClient(harness, IPAddress.Loopback);
        using var silent = await ConnectWebSocketAsync(harness, invoker);
        using var talking = await ConnectWebSocketAsync(harness, invoker);
        await EchoAsync(silent, "hello");

        // The talking socket passes a message every 300 ms, for 3 idle timeouts.
        var silentClosed = ClosedAsync(silent, TimeSpan.FromSeconds(15));
        for (var i = 0; i < 20; i++)
        {
            await EchoAsync(talking, $"message {i}");
            await Task.Delay(300);
        }

        var closedAfter = await silentClosed;
        output.WriteLine($"the silent WebSocket closed {closedAfter?.TotalSeconds:0.00} s after its last byte (idle timeout {idleTimeout.TotalSeconds:0} s)");
        Assert.True(closedAfter is { } after && after < idleTimeout * 1.25 + Slack, "the silent WebSocket is still open");
        Assert.Equal(WebSocketState.Open, talking.State);
        await EchoAsync(talking, "still here");

        // The origin's side went too: only the talking socket's stream is in flight on the tunnel.
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Sum(c => c.InFlight) == 1, TimeSpan.FromSeconds(5), "the idle socket's tunnel stream ends");
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "WebSocketIdleClosed");
        var metrics = await MetricsAsync(harness);
        Assert.True(EdgeCluster.Series(metrics, "tunnel_edge_visitor_refused_total", ("reason", "websocket_idle")) >= 1, metrics);
    }


    /// <summary>A raw TCP connection from <paramref name="from"/> that sends <paramref name="first"/> (if any) and then nothing.</summary>
    private static async Task<Stream> RawAsync(IPEndPoint edge, IPAddress from, byte[]? first)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(from, 0));
            await socket.ConnectAsync(edge);
            if (first is not null)
            {
                await socket.SendAsync(first, SocketFlags.None);
            }

            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A TLS connection (handshake done, ALPN <paramref name="protocol"/>) that sends <paramref name="first"/> (if any) and then nothing.</summary>
    private static async Task<Stream> TlsAsync(IPEndPoint edge, TestPki sites, SslApplicationProtocol protocol, byte[]? first)
    {
        var tcp = await RawAsync(edge, IPAddress.Loopback, null);
        var tls = new SslStream(tcp, leaveInnerStreamOpen: false);
        try
        {
            using var handshake = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = Host,
                ApplicationProtocols = [protocol],
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null && certificate.Issuer == sites.Ca.Subject,
            }, handshake.Token);
            if (first is not null)
            {
                await tls.WriteAsync(first);
                await tls.FlushAsync();
            }

            return tls;
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    /// <summary>Reads (and drops) what the edge sends until it closes the connection, or <paramref name="within"/> passes.</summary>
    private static async Task<bool> ClosedByEdgeWithinAsync(Stream stream, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        var buffer = new byte[4096];
        try
        {
            while (await stream.ReadAsync(buffer, timeout.Token) > 0)
            {
            }

            return true;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static async Task<double> CountOpenAsync(TunnelHarness harness) =>
        EdgeCluster.Series(await MetricsAsync(harness), "tunnel_edge_visitor_connections") ?? 0;

    private static async Task<EdgeErrorResponse> ReadAsync(HttpResponseMessage response)
    {
        var headers = response.Headers.Concat(response.Content.Headers)
            .ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
        return new EdgeErrorResponse((int)response.StatusCode, headers, await response.Content.ReadAsStringAsync());
    }

    private static async Task<string> MetricsAsync(TunnelHarness harness)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await client.GetStringAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics");
    }

    private static HttpRequestMessage Json(string url) => new(HttpMethod.Get, url) { Headers = { { "Accept", "application/json" } } };

    /// <summary>An HTTP/1.1 client whose connections come from <paramref name="from"/> and go to the edge's visitor port.</summary>
    private static HttpClient VisitorClient(TunnelHarness harness, IPAddress from) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(from, 0));
                await socket.ConnectAsync(harness.Edge.VisitorEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { Timeout = TimeSpan.FromSeconds(20) };

    private static async Task<ClientWebSocket> ConnectWebSocketAsync(TunnelHarness harness, HttpMessageInvoker invoker)
    {
        var socket = new ClientWebSocket();
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await socket.ConnectAsync(new Uri($"ws://{Host}:{harness.VisitorPort}/ws"), invoker, timeout.Token);
        return socket;
    }

    private static async Task EchoAsync(ClientWebSocket socket, string text)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, timeout.Token);
        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, timeout.Token);
        Assert.Equal(text, Encoding.UTF8.GetString(buffer, 0, received.Count));
    }

    /// <summary>How long after now the socket was closed under the reader, or <c>null</c> if it was not within <paramref name="within"/>.</summary>
    private static async Task<TimeSpan?> ClosedAsync(ClientWebSocket socket, TimeSpan within)
    {
        var started = Stopwatch.GetTimestamp();
        using var timeout = new CancellationTokenSource(within);
        try
        {
            var received = await socket.ReceiveAsync(new byte[1024], timeout.Token);
            return received.MessageType == WebSocketMessageType.Close ? Stopwatch.GetElapsedTime(started) : null;
        }
        catch (WebSocketException)
        {
            return Stopwatch.GetElapsedTime(started);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
