using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Tunnels.Http2;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit;

namespace Tunnel.EndToEnd.Tests.Http2;

/// <summary>
/// The edge's HTTP/2 client on its own, against a real Kestrel HTTP/2 server over real TLS on loopback
/// (not through the edge): concurrency limits, flow control both ways, trailers, resets, GOAWAY,
/// extended CONNECT, header limits and the keepalive PING.
/// </summary>
public sealed class TunnelHttp2HandlerTests : IAsyncLifetime
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);
    private readonly X509Certificate2 _certificate = CreateCertificate();
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<IDisposable> _clients = [];
    private WebApplication _app = null!;
    private IPEndPoint _endPoint = null!;
    private int _concurrent;
    private int _maxConcurrent;
    private int _waiting;
    private int _aborted;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.Http2.MaxStreamsPerConnection = 100;

            // As the plugin does on tunnel connections: the edge sends :scheme http inside TLS.
            kestrel.AllowAlternateSchemes = true;
            kestrel.Listen(IPAddress.Loopback, 0, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.UseHttps(_certificate);
            });
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        _app = builder.Build();
        _app.UseWebSockets();
        _app.Run(ServeAsync);
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _endPoint = new IPEndPoint(IPAddress.Loopback, new Uri(address).Port);
    }

    public async Task DisposeAsync()
    {
        _gate.TrySetResult();
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        await _app.DisposeAsync();
        _certificate.Dispose();
    }

    private async Task ServeAsync(HttpContext context)
    {
        var request = context.Request;
        switch (request.Path.Value)
        {
            case "/hello":
                await context.Response.WriteAsync($"{request.Method} {request.Host} {context.Features.Get<IHttpRequestFeature>()!.RawTarget}");
                break;
            case "/slow":
                var now = Interlocked.Increment(ref _concurrent);
                InterlockedMax(ref _maxConcurrent, now);
                await Task.Delay(50);
                Interlocked.Decrement(ref _concurrent);
                await context.Response.WriteAsync("ok");
                break;
            case "/download":
                var total = long.Parse(request.Query["bytes"]!);
                var chunk = Pattern(64 * 1024);
                for (long sent = 0; sent < total; sent += chunk.Length)
                {
                    await context.Response.Body.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, total - sent)));
                }

                break;
            case "/upload":
                using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
                {
                    var buffer = new byte[64 * 1024];
                    int read;
                    long length = 0;
                    while ((read = await request.Body.ReadAsync(buffer)) > 0)
                    {
                        sha.AppendData(buffer, 0, read);
                        length += read;
                    }

                    await context.Response.WriteAsync($"{length} {Convert.ToHexString(sha.GetHashAndReset())}");
                }

                break;
            case "/trailers":
                context.Response.DeclareTrailer("x-checksum");
                await context.Response.WriteAsync("body");
                context.Response.AppendTrailer("x-checksum", "42");
                break;
            case "/reset":
                context.Features.Get<IHttpResetFeature>()!.Reset(2);
                break;
            case "/wait":
                Interlocked.Increment(ref _waiting);
                context.RequestAborted.Register(() => Interlocked.Increment(ref _aborted));
                await _gate.Task.WaitAsync(context.RequestAborted);
                await context.Response.WriteAsync("done");
                break;
            case "/bigheaders":
                context.Response.Headers["x-big"] = new string('a', 100_000);
                break;
            case "/ws" when context.WebSockets.IsWebSocketRequest:
                using (var socket = await context.WebSockets.AcceptWebSocketAsync())
                {
                    var buffer = new byte[4096];
                    while (true)
                    {
                        var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                        if (result.MessageType == WebSocketMessageType.Close)
                        {
                            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                            break;
                        }

                        await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
                    }
                }

                break;
            default:
                context.Response.StatusCode = 404;
                break;
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Two_hundred_concurrent_requests_wait_for_the_servers_100_streams_and_all_succeed(bool withBodies)
    {
        var (invoker, _) = await ConnectAsync();
        var requests = Enumerable.Range(0, 200).Select(async i =>
        {
            // In-memory bodies, as the forwarder's replayable ones: sent again should a stream be refused.
            using var request = withBodies ? new HttpRequestMessage(HttpMethod.Post, "http://tunnel/slow") { Content = new ByteArrayContent(new byte[1000 + i]) } : Get("/slow");
            using var response = await invoker.SendAsync(request, CancellationToken.None);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }).ToArray();

        var results = await Task.WhenAll(requests).WaitAsync(Generous);
        Assert.All(results, r => Assert.Equal((HttpStatusCode.OK, "ok"), r));
        Assert.InRange(_maxConcurrent, 2, 90);
    }

    [Theory]
    [InlineData(0u, 0)]
    [InlineData(1u, 1)]
    [InlineData(2u, 1)]
    [InlineData(10u, 9)]
    [InlineData(100u, 90)]
    [InlineData(uint.MaxValue, int.MaxValue)]
    public void The_client_keeps_a_tenth_of_the_servers_stream_limit_free(uint advertised, int used) =>
        Assert.Equal(used, Http2Connection.StreamLimitFor(advertised));

    [Fact]
    public async Task The_authority_is_the_host_header_and_the_path_goes_unchanged()
    {
        var (invoker, _) = await ConnectAsync();
        var request = Get("/hello?a=%20b&c=/../d");
        request.Headers.Host = "visitor.example:8443";
        using var response = await invoker.SendAsync(request, CancellationToken.None);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Same(request, response.RequestMessage);
        Assert.Equal("GET visitor.example:8443 /hello?a=%20b&c=/../d", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_16_MiB_download_read_slowly_never_buffers_more_than_the_stream_window()
    {
        const int window = 256 * 1024;
        var (invoker, _) = await ConnectAsync(new Http2ClientSettings { StreamWindowSize = window, ConnectionWindowSize = 1024 * 1024 });
        using var response = await invoker.SendAsync(Get("/download?bytes=" + (16 << 20)), HttpCompletionOption.ResponseHeadersRead, CancellationToken.None);
        var body = await response.Content.ReadAsStreamAsync();
        var expected = Pattern(64 * 1024);
        var buffer = new byte[16 * 1024];
        long total = 0;
        var reads = 0;
        int read;
        while ((read = await body.ReadAsync(buffer).AsTask().WaitAsync(Generous)) > 0)
        {
            for (var i = 0; i < read; i++)
            {
                Assert.Equal(expected[(int)((total + i) % expected.Length)], buffer[i]);
            }

            total += read;
            if (++reads % 16 == 0)
            {
                // A slow visitor: the origin must wait for window rather than fill the edge's memory.
                await Task.Delay(2);
            }
        }

        Assert.Equal(16L << 20, total);
        var peak = ((Http2ResponseContent)response.Content).Stream.PeakBuffered;
        Assert.InRange(peak, 1, window);
    }

    [Fact]
    public async Task A_16_MiB_upload_arrives_whole()
    {
        var (invoker, _) = await ConnectAsync();
        var payload = new byte[16 << 20];
        new Random(16).NextBytes(payload);
        var request = new HttpRequestMessage(HttpMethod.Post, "http://tunnel/upload") { Content = new ByteArrayContent(payload) };
        using var response = await invoker.SendAsync(request, CancellationToken.None).WaitAsync(Generous);
        Assert.Equal($"{payload.Length} {Convert.ToHexString(SHA256.HashData(payload))}", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Trailers_are_there_when_the_body_ends()
    {
        var (invoker, _) = await ConnectAsync();
        var request = Get("/trailers");
        request.Headers.TryAddWithoutValidation("TE", "trailers");
        using var response = await invoker.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, CancellationToken.None);
        var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        var read = 0;
        while (await body.ReadAsync(buffer.AsMemory(read)) is var n and > 0)
        {
            read += n;
        }

        Assert.Equal("body", Encoding.ASCII.GetString(buffer, 0, read));
        Assert.Equal(["42"], response.TrailingHeaders.GetValues("x-checksum"));
    }

    [Fact]
    public async Task A_stream_the_server_resets_fails_with_its_error_code_and_the_connection_carries_on()
    {
        var (invoker, handler) = await ConnectAsync();
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Get("/reset"), CancellationToken.None));
        Assert.Equal(HttpRequestError.HttpProtocolError, error.HttpRequestError);
        var protocol = Assert.IsType<HttpProtocolException>(error.InnerException);
        Assert.Equal(2, protocol.ErrorCode);
        Assert.True(handler.IsUsable);
        using var next = await invoker.SendAsync(Get("/hello"), CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task A_cancelled_request_resets_its_stream_and_the_server_sees_the_abort()
    {
        var (invoker, _) = await ConnectAsync();
        using var cancel = new CancellationTokenSource();
        var sending = invoker.SendAsync(Get("/wait"), cancel.Token);
        await Wait.UntilAsync(() => Volatile.Read(ref _waiting) == 1, Generous, "the server has the request");
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        await Wait.UntilAsync(() => Volatile.Read(ref _aborted) == 1, Generous, "the server saw the stream reset");
    }

    [Fact]
    public async Task Content_that_throws_fails_the_request_with_the_original_error_inside()
    {
        var (invoker, handler) = await ConnectAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, "http://tunnel/upload") { Content = new FailingContent() };
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(request, CancellationToken.None).WaitAsync(Generous));
        Assert.IsType<InvalidDataException>(error.InnerException);
        Assert.True(handler.IsUsable);
    }

    [Fact]
    public async Task Graceful_shutdown_lets_in_flight_requests_finish_and_refuses_new_ones_as_not_processed()
    {
        var (invoker, handler) = await ConnectAsync();
        var inFlight = Enumerable.Range(0, 5).Select(_ => invoker.SendAsync(Get("/wait"), CancellationToken.None)).ToArray();
        await Wait.UntilAsync(() => Volatile.Read(ref _waiting) == 5, Generous, "the server has all five");
        var stopping = _app.StopAsync();
        await handler.GoAwayReceived.WaitAsync(Generous);
        Assert.False(handler.IsUsable);
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Get("/hello"), CancellationToken.None));
        Assert.Equal(HttpRequestError.ConnectionError, refused.HttpRequestError);

        _gate.TrySetResult();
        foreach (var request in inFlight)
        {
            using var response = await request.WaitAsync(Generous);
            Assert.Equal("done", await response.Content.ReadAsStringAsync());
        }

        await stopping.WaitAsync(Generous);
    }

    [Fact]
    public async Task An_extended_CONNECT_websocket_echoes_both_ways()
    {
        var (invoker, _) = await ConnectAsync();
        var request = new HttpRequestMessage(HttpMethod.Connect, "http://tunnel/ws") { Version = HttpVersion.Version20 };
        request.Headers.Protocol = "websocket";
        request.Headers.TryAddWithoutValidation("Sec-WebSocket-Version", "13");
        using var response = await invoker.SendAsync(request, CancellationToken.None).WaitAsync(Generous);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        Assert.True(stream.CanWrite);
        using var socket = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = false });
        var buffer = new byte[4096];
        for (var i = 0; i < 20; i++)
        {
            var message = Encoding.UTF8.GetBytes($"message {i} " + new string('x', i * 100));
            await socket.SendAsync(message, WebSocketMessageType.Text, true, CancellationToken.None);
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(Generous);
            Assert.Equal(message, buffer[..result.Count]);
        }

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None).WaitAsync(Generous);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, socket.CloseStatus);
    }

    [Fact]
    public async Task Response_headers_over_the_limit_fail_that_request_clearly_and_the_connection_carries_on()
    {
        var (invoker, handler) = await ConnectAsync();
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Get("/bigheaders"), CancellationToken.None).WaitAsync(Generous));
        Assert.Equal(HttpRequestError.ConfigurationLimitExceeded, error.HttpRequestError);
        Assert.Contains("64 KiB", error.Message);
        Assert.True(handler.IsUsable);
        using var next = await invoker.SendAsync(Get("/hello"), CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task A_black_holed_connection_fails_its_requests_once_a_ping_goes_unanswered()
    {
        await using var proxy = FaultProxy.Start(_endPoint);
        var (invoker, _) = await ConnectAsync(new Http2ClientSettings { KeepAlivePingDelay = TimeSpan.FromSeconds(1), KeepAlivePingTimeout = TimeSpan.FromSeconds(1) }, proxy.EndPoint);
        using (var first = await invoker.SendAsync(Get("/hello"), CancellationToken.None))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        var pending = invoker.SendAsync(Get("/wait"), CancellationToken.None);
        await Wait.UntilAsync(() => Volatile.Read(ref _waiting) == 1, Generous, "the server has the request");
        var blackHoled = DateTime.UtcNow;
        proxy.Links.Single().BlackHole();
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => pending.WaitAsync(Generous));
        Assert.Equal(HttpRequestError.ResponseEnded, error.HttpRequestError);
        Assert.Contains("PING", error.Message);

        // Delay plus timeout is 2 s; the bound allows for a loaded machine.
        Assert.InRange(DateTime.UtcNow - blackHoled, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(15));
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(Get("/hello"), CancellationToken.None));
        Assert.Equal(HttpRequestError.ConnectionError, refused.HttpRequestError);
    }

    private async Task<(HttpMessageInvoker Invoker, TunnelHttp2Handler Handler)> ConnectAsync(Http2ClientSettings? settings = null, IPEndPoint? endPoint = null)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork) { NoDelay = true };
        await tcp.ConnectAsync(endPoint ?? _endPoint);
        var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        var thumbprint = _certificate.GetCertHashString();
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == thumbprint,
        });
        var handler = new TunnelHttp2Handler(ssl, settings ?? new Http2ClientSettings(), TimeProvider.System);
        var invoker = new HttpMessageInvoker(handler);
        _clients.Add(invoker);
        _clients.Add(tcp);
        return (invoker, handler);
    }

    private static HttpRequestMessage Get(string target) => new(HttpMethod.Get, "http://tunnel" + target) { Version = HttpVersion.Version20 };

    private static byte[] Pattern(int length)
    {
        var pattern = new byte[length];
        for (var i = 0; i < length; i++)
        {
            pattern[i] = (byte)(i % 251);
        }

        return pattern;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null);
    }

    private sealed class FailingContent : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(new byte[100]);
            await stream.FlushAsync();
            await Task.Delay(50);
            throw new InvalidDataException("The visitor's body was malformed.");
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}

file static class InvokerExtensions
{
    public static async Task<HttpResponseMessage> SendAsync(this HttpMessageInvoker invoker, HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        Assert.Equal(HttpCompletionOption.ResponseHeadersRead, completion);
        return await invoker.SendAsync(request, cancellationToken);
    }
}
