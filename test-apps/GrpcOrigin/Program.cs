using GrpcOrigin;

var builder = WebApplication.CreateBuilder(args);

// The one line: the app is served through the tunnel (options from the "Tunnel" section).
builder.WebHost.UseTunnelTransport();
builder.Services.AddProbeService();

var app = builder.Build();
app.MapGrpcService<ProbeService>();
app.Run();
