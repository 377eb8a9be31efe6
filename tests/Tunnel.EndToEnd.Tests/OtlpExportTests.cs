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
    private readonly ConcurrentQueue<(string Path, byte[] Body)> _received = new();

    [Fact]
    public async Task HelloOrigin_exports_the_tunnels_metrics_and_spans_over_OTLP()
    {
        await using var collector = await StartCollectorAsync();
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

    }

    [Fact]
    public async Task The_edge_exports_its_metrics_and_spans_over_OTLP()
    {
        await using var collector = await StartCollectorAsync();
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.OtlpEndpoint = collector.Urls.Single();
            o.OtlpExportInterval = TimeSpan.FromMilliseconds(500);
        });
        await harness.StartOriginAsync();
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--fail", harness.VisitorUrl("/")], TimeSpan.FromSeconds(30));
        Assert.Equal(0, result.ExitCode);

        await Wait.UntilAsync(() => Contains("metrics", "tunnel.edge.requests") && Contains("metrics", "tunnel.edge.tunnels"), TimeSpan.FromSeconds(15), "the edge's metrics arrive over OTLP");
        await Wait.UntilAsync(() => Contains("traces", "Tunnel.Edge") && Contains("traces", "GET hello.test"), TimeSpan.FromSeconds(15), "the edge's request spans arrive over OTLP");
    }

    private bool Contains(string signal, string text) =>
        _received.Any(r => r.Path == signal && Encoding.UTF8.GetString(r.Body).Contains(text, StringComparison.Ordinal));

    /// <summary>A stand-in collector: it keeps what arrives at the OTLP/HTTP paths.</summary>
    private async Task<WebApplication> StartCollectorAsync()
    {
        var collectorBuilder = WebApplication.CreateSlimBuilder();
        collectorBuilder.Logging.ClearProviders();
        collectorBuilder.WebHost.UseUrls("http://127.0.0.1:0");
        var collector = collectorBuilder.Build();
        collector.MapPost("/v1/{signal}", async (HttpContext context, string signal) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            _received.Enqueue((signal, body.ToArray()));
            return Results.Ok();
        });
        await collector.StartAsync();
        return collector;
    }
}
