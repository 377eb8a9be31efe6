using HelloOrigin;
using Microsoft.AspNetCore.Connections;

// A plain minimal-API app. The one tunnel line: UseTunnelTransport (options from the "Tunnel" section).
var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseTunnelTransport();

// Optionally one hostname whose visitor connections the edge carries whole (the benchmarks' passthrough row).
if (builder.Configuration["Hello:HttpPassthroughHost"] is { Length: > 0 } passthroughHost)
{
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenTunnel(passthroughHost, Tunnel.Transport.TunnelMode.HttpPassthrough));
}

// Optionally one hostname in TLS passthrough, the TLS ending here with the certificate of Hello:TlsCertificatePath
// (PEM, with Hello:TlsKeyPath), and a plain TCP service on Hello:TcpServicePort (loopback) that a TCP route
// (Hello:TcpRouteHost) relays to: the benchmarks' TLS and TCP rows.
if (builder.Configuration["Hello:TlsPassthroughHost"] is { Length: > 0 } tlsHost)
{
    var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(
        builder.Configuration["Hello:TlsCertificatePath"]!, builder.Configuration["Hello:TlsKeyPath"]);
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenTunnel(tlsHost, Tunnel.Transport.TunnelMode.TlsPassthrough, listen => listen.UseHttps(certificate)));
}

if (builder.Configuration.GetValue<int?>("Hello:TcpServicePort") is { } servicePort)
{
    builder.WebHost.ConfigureKestrel(kestrel =>
    {
        kestrel.Listen(System.Net.IPAddress.Loopback, servicePort, listen => listen.UseConnectionHandler<ByteService>());
        if (builder.Configuration["Hello:TcpRouteHost"] is { Length: > 0 } tcpHost)
        {
            kestrel.ListenTunnel(tcpHost, Tunnel.Transport.TunnelMode.Tcp, listen => listen.UseTcpRelay($"127.0.0.1:{servicePort}"));
        }
    });
}
builder.AddHelloTelemetry(); // OpenTelemetry SDK + OTLP, when an endpoint is configured
builder.Services.AddHealthChecks().AddTunnel();

var app = builder.Build();
app.MapHelloEndpoints();
app.MapHealthChecks("/healthz");
app.MapHelloMetrics(); // Prometheus /metrics on a loopback listener: --urls http://127.0.0.1:9464
app.Run();
