using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace HelloOrigin;

/// <summary>
/// Wires the OpenTelemetry SDK with the OTLP exporter when an endpoint is configured
/// (<c>Otlp:Endpoint</c> in configuration, or the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>):
/// the tunnel's metrics and dial spans, and ASP.NET Core's request metrics and spans.
/// </summary>
public static class HelloTelemetry
{
    /// <summary>Adds the providers; they flush and stop with the host.</summary>
    public static WebApplicationBuilder AddHelloTelemetry(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var endpoint = builder.Configuration["Otlp:Endpoint"] ?? Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            return builder;
        }

        var resource = ResourceBuilder.CreateDefault().AddService(builder.Configuration["Otlp:ServiceName"] ?? "hello-origin");
        // Over HTTP an endpoint given in code is used as is, so each signal gets its standard path here.
        void Otlp(OpenTelemetry.Exporter.OtlpExporterOptions o, string signal)
        {
            o.Endpoint = new Uri(endpoint.TrimEnd('/') + "/v1/" + signal);
            o.Protocol = OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf;
        }

        // Made by the container, so it disposes them (flushing) when the host stops.
        builder.Services.AddHostedService(_ => new Providers(Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter("Tunnel.Transport", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
            .AddOtlpExporter((exporter, reader) =>
            {
                Otlp(exporter, "metrics");
                if (int.TryParse(builder.Configuration["Otlp:ExportIntervalMilliseconds"], out var interval))
                {
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = interval;
                }
            })
            .Build(), Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource("Tunnel.Transport", "Microsoft.AspNetCore")
            .AddOtlpExporter(o =>
            {
                Otlp(o, "traces");
                if (int.TryParse(builder.Configuration["Otlp:ExportIntervalMilliseconds"], out var interval))
                {
                    o.BatchExportProcessorOptions.ScheduledDelayMilliseconds = interval;
                }
            })
            .Build()));
        return builder;
    }

    private sealed class Providers(MeterProvider meters, TracerProvider traces) : IHostedService, IDisposable
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
