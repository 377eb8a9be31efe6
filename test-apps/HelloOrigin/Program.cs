using HelloOrigin;

// A plain minimal-API app. The one tunnel line: UseTunnelTransport (options from the "Tunnel" section).
var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseTunnelTransport();

var app = builder.Build();
app.MapHelloEndpoints();
app.Run();
