using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Tunnel.Edge.Forwarding;

namespace Tunnel.Edge.Telemetry;

/// <summary>
/// Pushes the edge's metrics and spans over OTLP/HTTP when an endpoint is configured. The providers
/// are singletons of the edge's host, so they flush and stop with it.
/// </summary>
internal static class EdgeOtlpExport
{
    public static void AddIfConfigured(IServiceCollection services, EdgeOptions options)
    {
        var endpoint = options.OtlpEndpoint ?? Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            return;
        }

        var resource = ResourceBuilder.CreateDefault().AddService("tunnel-edge", serviceInstanceId: options.Name);

        // Over HTTP an endpoint given in code is used as is, so each signal gets its standard path here.
        void Configure(OtlpExporterOptions exporter, string signal)
        {
            exporter.Endpoint = new Uri(endpoint.TrimEnd('/') + "/v1/" + signal);
            exporter.Protocol = OtlpExportProtocol.HttpProtobuf;
        }

        var interval = (int)Math.Clamp(options.OtlpExportInterval.TotalMilliseconds, 100, int.MaxValue);

        // Made by the container, so the container disposes them (flushing) when the edge stops; a
        // hosted service so they exist from the start.
        services.AddHostedService(_ => new Providers(Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(EdgeMetrics.MeterName, EdgeMetrics.RuntimeMeterName)
            .AddOtlpExporter((exporter, reader) =>
            {
                Configure(exporter, "metrics");
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = interval;
            })
            .Build(), Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            // ASP.NET Core's own request span is the parent of the edge's: listening to it makes it sampled.
            .AddSource(EdgeTracing.SourceName, "Microsoft.AspNetCore")
            .AddOtlpExporter(exporter =>
            {
                Configure(exporter, "traces");
                exporter.BatchExportProcessorOptions.ScheduledDelayMilliseconds = interval;
            })
            .Build()));
    }

    private sealed class Providers(MeterProvider meters, TracerProvider traces) : Microsoft.Extensions.Hosting.IHostedService, IDisposable
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose()
        {
            meters.Dispose();
            traces.Dispose();
        }
    }
}
