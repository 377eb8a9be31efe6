using System.Collections.Concurrent;
using System.Text;
using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class OtlpExportTests
{
    [Fact]
    public async Task HelloOrigin_exports_the_tunnels_metrics_and_spans_over_OTLP()
    {
        // A stand-in collector: it keeps what arrives at the OTLP/HTTP paths.
        var received = new ConcurrentQueue<(string Path, byte[] Body)>();
        var collectorBuilder = WebApplication.CreateSlimBuilder();
        collectorBuilder.Logging.ClearProviders();
        collectorBuilder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var collector = collectorBuilder.Build();
        collector.MapPost("/v1/{signal}", async (HttpContext context, string signal) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            received.Enqueue((signal, body.ToArray()));
            return Results.Ok();
        });
        await collector.StartAsync();
        var endpoint = collector.Urls.Single();

        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureBuilder: builder =>
        {
            builder.Configuration["Otlp:Endpoint"] = endpoint;
            builder.Configuration["Otlp:ExportIntervalMilliseconds"] = "500";
            builder.AddHelloTelemetry();
        });

        await Wait.UntilAsync(() => Contains("metrics", "tunnel.connection.attempts") && Contains("metrics", "tunnel.connections"), TimeSpan.FromSeconds(15), "the tunnel's metrics arrive over OTLP");
        await Wait.UntilAsync(() => Contains("traces", "tunnel.dial"), TimeSpan.FromSeconds(15), "the dial spans arrive over OTLP");

        bool Contains(string signal, string text) =>
            received.Any(r => r.Path == signal && Encoding.UTF8.GetString(r.Body).Contains(text, StringComparison.Ordinal));
    }
}
