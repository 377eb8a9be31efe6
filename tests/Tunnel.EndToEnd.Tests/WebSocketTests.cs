using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// WebSockets from visitors speaking HTTP/1.1 (Upgrade) and HTTP/2 (RFC 8441 extended CONNECT over
/// h2c), through the tunnel (always extended CONNECT) to an app that maps its endpoint the ordinary way.
/// </summary>
public class WebSocketTests
{
    private static readonly TimeSpan TestTimeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task Ten_thousand_messages_of_mixed_sizes_and_types_echo_intact(string version)
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: MapWebSocketEndpoints);
        using var timeout = new CancellationTokenSource(TestTimeout);
        using var visitor = await VisitorSocket.ConnectAsync(harness, "/ws/echo", version, timeout.Token);
        var socket = visitor.Socket;

        var messages = CreateMessages(seed: 8441, count: 10_000);
        var sending = Task.Run(async () =>
        {
            foreach (var (type, data) in messages)
            {
                await socket.SendAsync(data, type, endOfMessage: true, timeout.Token);
            }
        });

        // Received while still sending: the echo streams back through the tunnel as the app writes it.
        var buffer = new byte[(1 << 20) + 1];
        for (var i = 0; i < messages.Count; i++)
        {
            var (type, data) = messages[i];
            var length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                Assert.True(length < buffer.Length, $"message {i} is longer than sent");
                result = await socket.ReceiveAsync(buffer.AsMemory(length), timeout.Token);
                length += result.Count;
            }
            while (!result.EndOfMessage);

            Assert.Equal(type, result.MessageType);
            Assert.Equal(data.Length, length);
            Assert.True(buffer.AsSpan(0, length).SequenceEqual(data), $"message {i} ({data.Length} bytes, {type}) came back changed");
        }

        await sending;
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, socket.CloseStatus);
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task Close_codes_pass_through_both_ways(string version)
    {
        var appSaw = new TaskCompletionSource<(WebSocketCloseStatus?, string?)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app =>
        {
            MapWebSocketEndpoints(app);
            app.Map("/ws/bye", async context =>
            {
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                await socket.CloseAsync((WebSocketCloseStatus)4001, "bye", context.RequestAborted);
            });
            app.Map("/ws/record", async context =>
            {
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                var result = await socket.ReceiveAsync(new byte[1024], context.RequestAborted);
                appSaw.TrySetResult((result.CloseStatus, result.CloseStatusDescription));
                await socket.CloseAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, "as you wish", context.RequestAborted);
            });
        });
        using var timeout = new CancellationTokenSource(TestTimeout);

        // The app closes: the visitor sees its code and reason.
        using (var visitor = await VisitorSocket.ConnectAsync(harness, "/ws/bye", version, timeout.Token))
        {
            var result = await visitor.Socket.ReceiveAsync(new byte[1024], timeout.Token);
            Assert.Equal(WebSocketMessageType.Close, result.MessageType);
            Assert.Equal((WebSocketCloseStatus)4001, result.CloseStatus);
            Assert.Equal("bye", result.CloseStatusDescription);
            await visitor.Socket.CloseOutputAsync((WebSocketCloseStatus)4001, "", timeout.Token);
        }

        // The visitor closes: the app sees its code and reason, and the visitor the app's answer.
        using (var visitor = await VisitorSocket.ConnectAsync(harness, "/ws/record", version, timeout.Token))
        {
            await visitor.Socket.CloseAsync((WebSocketCloseStatus)4002, "client bye", timeout.Token);
            var (status, description) = await appSaw.Task.WaitAsync(timeout.Token);
            Assert.Equal((WebSocketCloseStatus)4002, status);
            Assert.Equal("client bye", description);
            Assert.Equal((WebSocketCloseStatus)4002, visitor.Socket.CloseStatus);
            Assert.Equal("as you wish", visitor.Socket.CloseStatusDescription);
        }
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task A_visitor_that_aborts_its_websocket_ends_the_apps_receive_within_a_second(string version)
    {
        var accepted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app =>
        {
            MapWebSocketEndpoints(app);
            app.Map("/ws/hold", async context =>
            {
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                var buffer = new byte[1024];
                var first = await socket.ReceiveAsync(buffer, context.RequestAborted);
                accepted.TrySetResult();
                try
                {
                    // No timeout here: only the visitor's leaving may end this receive.
                    var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                    ended.TrySetResult($"received {result.MessageType}");
                }
                catch (Exception ex)
                {
                    ended.TrySetResult(ex.GetType().Name);
                }
            });
        });
        using var timeout = new CancellationTokenSource(TestTimeout);
        using var visitor = await VisitorSocket.ConnectAsync(harness, "/ws/hold", version, timeout.Token);
        await visitor.Socket.SendAsync("hello"u8.ToArray(), WebSocketMessageType.Text, true, timeout.Token);
        await accepted.Task.WaitAsync(timeout.Token);

        var left = Stopwatch.StartNew();
        visitor.Socket.Abort();
        var how = await ended.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(left.Elapsed < TimeSpan.FromSeconds(1), $"the app's receive ended ({how}) {left.Elapsed.TotalMilliseconds:0} ms after the visitor aborted");
        Assert.DoesNotContain("received", how, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task An_app_that_refuses_the_websocket_answers_the_visitor_with_its_own_status(string version)
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app =>
        {
            MapWebSocketEndpoints(app);
            app.Map("/ws/deny", context =>
            {
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                return context.Response.WriteAsync("not for you");
            });
        });
        using var timeout = new CancellationTokenSource(TestTimeout);
        var socket = new ClientWebSocket { Options = { CollectHttpResponseDetails = true } };
        await Assert.ThrowsAsync<WebSocketException>(() => VisitorSocket.ConnectAsync(harness, "/ws/deny", version, timeout.Token, socket));
        Assert.Equal(HttpStatusCode.Forbidden, socket.HttpStatusCode);
    }

    /// <summary>The app's WebSocket endpoints, mapped as any app maps them.</summary>
    private static void MapWebSocketEndpoints(WebApplication app)
    {
        app.UseWebSockets();
        app.Map("/ws/echo", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[64 * 1024];
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer.AsMemory(), context.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(socket.CloseStatus ?? WebSocketCloseStatus.NormalClosure, socket.CloseStatusDescription, context.RequestAborted);
                    return;
                }

                // Frame by frame, as it arrives: a 1 MiB message streams back while still arriving.
                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, context.RequestAborted);
            }
        });
    }

    /// <summary>Mostly small messages, some up to 64 KiB and five of exactly 1 MiB; text and binary.</summary>
    private static List<(WebSocketMessageType Type, byte[] Data)> CreateMessages(int seed, int count)
    {
        var random = new Random(seed);
        var messages = new List<(WebSocketMessageType, byte[])>(count);
        for (var i = 0; i < count; i++)
        {
            var size = i % 2000 == 1000 ? 1 << 20
                : random.NextDouble() < 0.95 ? random.Next(1, 257)
                : random.Next(257, 64 * 1024 + 1);
            var data = new byte[size];
            var type = random.Next(2) == 0 ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
            if (type == WebSocketMessageType.Text)
            {
                // ASCII, so every message is valid UTF-8 as text frames must be.
                for (var j = 0; j < size; j++)
                {
                    data[j] = (byte)('a' + random.Next(26));
                }
            }
            else
            {
                random.NextBytes(data);
            }

            messages.Add((type, data));
        }

        return messages;
    }

    /// <summary>A ClientWebSocket to the edge's visitor port, over HTTP/1.1 or HTTP/2 (h2c, prior knowledge).</summary>
    private sealed class VisitorSocket(ClientWebSocket socket, HttpMessageInvoker invoker) : IDisposable
    {
        public ClientWebSocket Socket { get; } = socket;

        public static async Task<VisitorSocket> ConnectAsync(TunnelHarness harness, string path, string version, CancellationToken cancellationToken, ClientWebSocket? socket = null)
        {
            var port = harness.VisitorPort;
            var invoker = new HttpMessageInvoker(new SocketsHttpHandler
            {
                // The URI names the site (Host, :authority); every connection goes to the edge on loopback.
                ConnectCallback = async (_, ct) =>
                {
                    var tcp = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        await tcp.ConnectAsync(IPAddress.Loopback, port, ct);
                        return new NetworkStream(tcp, ownsSocket: true);
                    }
                    catch
                    {
                        tcp.Dispose();
                        throw;
                    }
                },
            });
            socket ??= new ClientWebSocket();
            socket.Options.HttpVersion = Version.Parse(version);
            socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
            try
            {
                await socket.ConnectAsync(new Uri($"ws://{TunnelHarness.Hostname}:{port}{path}"), invoker, cancellationToken);
                return new VisitorSocket(socket, invoker);
            }
            catch
            {
                socket.Dispose();
                invoker.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Socket.Dispose();
            invoker.Dispose();
        }
    }
}
