using HelloOrigin;

// A plain minimal-API app. The one tunnel line: UseTunnelTransport (options from the "Tunnel" section).
var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseTunnelTransport();

// Optionally one hostname whose visitor connections the edge carries whole (the benchmarks' passthrough row).
if (builder.Configuration["Hello:HttpPassthroughHost"] is { Length: > 0 } passthroughHost)
{
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenTunnel(passthroughHost, Tunnel.Transport.TunnelMode.HttpPassthrough));
}
builder.AddHelloTelemetry(); // OpenTelemetry SDK + OTLP, when an endpoint is configured
builder.Services.AddHealthChecks().AddTunnel();

var app = builder.Build();
app.MapHelloEndpoints();
app.MapHealthChecks("/healthz");
app.MapHelloMetrics(); // Prometheus /metrics on a loopback listener: --urls http://127.0.0.1:9464
app.Run();
