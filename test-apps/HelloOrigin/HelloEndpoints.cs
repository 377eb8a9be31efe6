using System.Buffers;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.Features;

namespace HelloOrigin;

/// <summary>The endpoints of the sample origin, shared by its Program, the demo and the tests.</summary>
public static class HelloEndpoints
{
    /// <summary>The byte at position <paramref name="index"/> of every /download body: a pattern a receiver can check.</summary>
    public static byte PatternByte(long index) => (byte)(index % 251);

    /// <summary>Maps GET /, POST /echo, GET /headers, GET /stream, GET /download and POST /upload.</summary>
    public static WebApplication MapHelloEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);

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
                viaTunnel = tunnel is not null,
                edge = tunnel?.EdgeName,
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
            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                // 251 is prime and does not divide the buffer size, so the pattern shifts between chunks.
                long sent = 0;
                while (sent < total)
                {
                    var chunk = (int)Math.Min(buffer.Length, total - sent);
                    for (var i = 0; i < chunk; i++)
                    {
                        buffer[i] = PatternByte(sent + i);
                    }

                    await context.Response.Body.WriteAsync(buffer.AsMemory(0, chunk), context.RequestAborted);
                    sent += chunk;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
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
