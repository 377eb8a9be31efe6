using System.Buffers;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.Features;

namespace HelloOrigin;

/// <summary>The endpoints of the sample origin, shared by its Program, the demo and the tests.</summary>
public static class HelloEndpoints
{
    private const string AppPage = """
        <!doctype html>
        <html lang="en">
        <head><meta charset="utf-8"><title>HelloOrigin through the tunnel</title>
        <style>body{font-family:system-ui,sans-serif;margin:2em} li{font-family:monospace}</style></head>
        <body>
        <h1>HelloOrigin</h1>
        <p>Scheme: <span id="scheme"></span></p>
        <h2>WebSocket</h2><ul id="ws"></ul>
        <h2>Server-sent events</h2><ul id="sse"></ul>
        <script>
        const add = (list, text) => { const li = document.createElement('li'); li.textContent = text; document.getElementById(list).appendChild(li); };
        document.getElementById('scheme').textContent = location.protocol;
        const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
        let sent = 0;
        ws.onopen = () => { for (sent = 1; sent <= 3; sent++) ws.send('ping ' + sent); };
        ws.onmessage = e => add('ws', 'echo: ' + e.data);
        ws.onerror = () => add('ws', 'error');
        const events = new EventSource('/stream?count=3');
        events.onmessage = e => { add('sse', 'event: ' + JSON.parse(e.data).n); if (JSON.parse(e.data).n === 2) events.close(); };
        </script>
        </body>
        </html>
        """;

    /// <summary>The byte at position <paramref name="index"/> of every /download body: a pattern a receiver can check.</summary>
    public static byte PatternByte(long index) => (byte)(index % 251);

    // The pattern from every phase: bytes [k, k + 64 KiB) for k < 251 are the pattern from position k
    // onwards, so a chunk of the body is a slice of this and costs the app no work per byte.
    private static readonly byte[] PatternTable = CreatePatternTable();

    private const int DownloadChunk = 64 * 1024;

    private static byte[] CreatePatternTable()
    {
        var table = new byte[DownloadChunk + 251];
        for (var i = 0; i < table.Length; i++)
        {
            table[i] = PatternByte(i);
        }

        return table;
    }

    /// <summary>Maps GET /, POST /echo, GET /headers, GET /stream, GET /download, POST /upload, GET /ws (WebSocket echo) and GET /app (a page using both).</summary>
    public static WebApplication MapHelloEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseWebSockets();

        app.MapGet("/app", () => Results.Content(AppPage, "text/html; charset=utf-8"));

        // The ordinary way to serve a WebSocket: the tunnel must carry it unchanged.
        app.Map("/ws", async (HttpContext context) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                return Results.BadRequest("WebSocket requests only.");
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var received = await socket.ReceiveAsync(buffer, context.RequestAborted);
                    if (received.MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                    {
                        await socket.CloseAsync(received.CloseStatus ?? System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, received.CloseStatusDescription, context.RequestAborted);
                        break;
                    }

                    await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or System.Net.WebSockets.WebSocketException)
            {
                // The visitor left.
            }

            return Results.Empty;
        });

        app.MapGet("/", () => "Hello from HelloOrigin, served through the tunnel.\n");

        app.MapPost("/echo", async (HttpContext context) =>
        {
            context.Response.ContentType = context.Request.ContentType ?? "application/octet-stream";
            await context.Request.Body.CopyToAsync(context.Response.Body, context.RequestAborted);
        });

        app.MapGet("/headers", (HttpContext context) =>
        {
            var leftOver = context.Request.Headers
                .Where(h => h.Key.StartsWith("X-Forwarded-", StringComparison.OrdinalIgnoreCase) || h.Key.Equals("Forwarded", StringComparison.OrdinalIgnoreCase))
                .ToDictionary(h => h.Key, h => h.Value.ToString());
            var tunnel = context.Features.Get<Tunnel.Transport.ITunnelConnectionFeature>();
            return Results.Json(new
            {
                scheme = context.Request.Scheme,
                host = context.Request.Host.Value,
                remoteIp = context.Connection.RemoteIpAddress?.ToString(),
                protocol = context.Request.Protocol,
                forwardedHeaders = leftOver,
                received = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
                viaTunnel = tunnel is not null,
                edge = tunnel?.EdgeName,
                passthrough = context.Features.Get<Tunnel.Transport.ITunnelVisitorConnectionFeature>()?.Mode.ToString(),
                tunnelConnection = (tunnel ?? context.Features.Get<Tunnel.Transport.ITunnelVisitorConnectionFeature>()?.Tunnel)?.TunnelConnectionId,
                remotePort = context.Connection.RemotePort,
            });
        });

        app.MapGet("/stream", async (HttpContext context, int? count) =>
        {
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            var events = Math.Clamp(count ?? 10, 1, 10_000);
            try
            {
                for (var i = 0; i < events; i++)
                {
                    await context.Response.WriteAsync($"id: {i}\ndata: {{\"n\":{i},\"at\":\"{DateTimeOffset.UtcNow:O}\"}}\n\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    await Task.Delay(100, context.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
                // The visitor left.
            }
        });

        app.MapGet("/download", async (HttpContext context, long? bytes) =>
        {
            var total = Math.Clamp(bytes ?? 1024, 0, 16L * 1024 * 1024 * 1024);
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = total;
            // A file server's cost, not a generator's: each chunk is a slice of the precomputed pattern,
            // so the benchmark's download row measures the path to the visitor rather than this loop.
            long sent = 0;
            while (sent < total)
            {
                var chunk = (int)Math.Min(DownloadChunk, total - sent);
                await context.Response.Body.WriteAsync(PatternTable.AsMemory((int)(sent % 251), chunk), context.RequestAborted);
                sent += chunk;
            }
        });

        app.MapPost("/upload", async (HttpContext context) =>
        {
            context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            long total = 0;
            try
            {
                int read;
                while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
                {
                    sha.AppendData(buffer, 0, read);
                    total += read;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            return Results.Json(new { bytes = total, sha256 = Convert.ToHexStringLower(sha.GetHashAndReset()) });
        });

        return app;
    }
}
