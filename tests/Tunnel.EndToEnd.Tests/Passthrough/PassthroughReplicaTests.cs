using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests.Passthrough;

/// <summary>
/// HTTP passthrough with the things apps do: a WebSocket on a carried connection, two replicas sharing
/// the connections, and a replica stopped gracefully while visitors keep coming.
/// </summary>
public class PassthroughReplicaTests
{
    private const string Host = "pass.test";

    [Fact]
    public async Task A_websocket_works_over_http_passthrough()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await HttpPassthroughTests.StartPassthroughOriginAsync(harness);
        using var handler = Handler(harness);
        using var invoker = new HttpMessageInvoker(handler);
        using var socket = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await socket.ConnectAsync(new Uri($"ws://{Host}:{harness.VisitorPort}/ws"), invoker, timeout.Token);
        var buffer = new byte[1024];
        foreach (var text in (string[])["first", "second message", new string('x', 900)])
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, timeout.Token);
            var received = await socket.ReceiveAsync(buffer, timeout.Token);
            Assert.Equal(text, Encoding.UTF8.GetString(buffer, 0, received.Count));
        }

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, socket.CloseStatus);
    }

    [Fact]
    public async Task Two_replicas_share_passthrough_connections_and_one_stopped_gracefully_under_load_fails_no_request_started_after_the_stop()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var first = await HttpPassthroughTests.StartPassthroughOriginAsync(harness);
        await HttpPassthroughTests.StartPassthroughOriginAsync(harness);
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) >= 8, TimeSpan.FromSeconds(20), "both replicas' tunnels are registered");
        using var handler = Handler(harness);
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };

        // 60 requests, each on a new visitor connection: the edge spreads connections over both replicas.
        var seen = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            seen.Add(await TunnelConnectionOfAsync(client));
        }

        var connectors = harness.Edge.Routes.Connections().ToDictionary(c => c.Id, c => c.ConnectorId);
        var byReplica = seen.GroupBy(id => connectors[id]).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(byReplica.Count == 2, $"connections went to both replicas: {string.Join(", ", byReplica.Select(r => $"{r.Key}={r.Value}"))}");

        // Now a steady stream of new connections while the first replica stops gracefully.
        var failures = new List<string>();
        var completed = 0;
        using var stopLoad = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var stopStarted = DateTime.MaxValue;
        var load = Task.Run(async () =>
        {
            while (!stopLoad.IsCancellationRequested && completed < 2000)
            {
                var started = DateTime.UtcNow;
                try
                {
                    await TunnelConnectionOfAsync(client);
                    Interlocked.Increment(ref completed);
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    if (started > stopStarted)
                    {
                        lock (failures)
                        {
                            failures.Add(ex.Message);
                        }
                    }
                }
            }
        });

        await Wait.UntilAsync(() => Volatile.Read(ref completed) >= 50, TimeSpan.FromSeconds(30), "load is flowing");
        stopStarted = DateTime.UtcNow;
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            await first.App.StopAsync(stop.Token);
        }

        var atStop = Volatile.Read(ref completed);
        await Wait.UntilAsync(() => Volatile.Read(ref completed) >= atStop + 100, TimeSpan.FromSeconds(30), "the other replica carries the load");
        await stopLoad.CancelAsync();
        await load;
        Assert.True(failures.Count == 0, $"{failures.Count} requests started after the stop failed: {string.Join("; ", failures.Take(5))}");
    }

    /// <summary>One GET of /headers on a new connection; returns the id of the tunnel connection that carried it.</summary>
    private static async Task<string> TunnelConnectionOfAsync(HttpClient client)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{Host}/headers");
        request.Headers.ConnectionClose = true;
        using var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("tunnelConnection").GetString()!;
    }

    /// <summary>A handler whose every connection goes to the edge's visitor port, whatever the URL's host.</summary>
    private static SocketsHttpHandler Handler(TunnelHarness harness) => new()
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(harness.Edge.VisitorEndPoint, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        },
    };
}
