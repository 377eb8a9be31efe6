using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using HelloOrigin;
using System.Text;
using Tunnel.Edge;
using Tunnel.Edge.Hosting;
using Tunnel.Edge.Identity;
using Tunnel.Protocol.Credentials;
using Tunnel.Transport;

// Runs an edge and HelloOrigin together on loopback with fresh development certificates, waits until
// the tunnel is registered, and prints the URLs to curl. Ctrl+C stops both. One more hostname is served
// in TLS passthrough on the edge's HTTPS port: the TLS handshake ends in the app, with the app's own
// development certificate, which the edge never holds.
//   dotnet run --project test-apps/Demo [-- --http-port 8080 --https-port 8443 --tunnel-port 7844 --admin-port 9844 --hostname hello.localhost --secure-hostname secure.localhost]
var httpPort = IntArg("--http-port", 8080);
var tunnelPort = IntArg("--tunnel-port", 7844);
var adminPort = IntArg("--admin-port", 9844);
var hostname = StringArg("--hostname", "hello.localhost");
var httpsPort = IntArg("--https-port", 8443);
var secureHostname = StringArg("--secure-hostname", "secure.localhost");
const int HaConnections = 4;

var directory = Directory.CreateTempSubdirectory("tunnel-demo-").FullName;
using var ca = CertificateIssuer.CreateCertificateAuthority("Tunnel Demo CA", TimeSpan.FromDays(1));
using var edgeCertificate = CertificateIssuer.IssueServerCertificate(ca, ["localhost"], [IPAddress.Loopback, IPAddress.IPv6Loopback], TimeSpan.FromDays(1));
using var originCertificate = CertificateIssuer.IssueOriginCertificate(ca, [hostname, secureHostname], TimeSpan.FromDays(1));

// The app's own HTTPS certificate for the passthrough hostname (what it would use on a public port).
using var appCertificate = CertificateIssuer.IssueSiteCertificate(ca, [secureHostname], TimeSpan.FromDays(1));
CertificateIssuer.WritePem(ca, Path.Combine(directory, "ca.pem"), Path.Combine(directory, "ca.key"));
CertificateIssuer.WritePem(edgeCertificate, Path.Combine(directory, "edge.pem"), Path.Combine(directory, "edge.key"));

var edge = EdgeServer.Create(new EdgeOptions
{
    Name = "demo-edge",
    Region = "local",
    TunnelAddress = "127.0.0.1",
    TunnelPort = tunnelPort,
    VisitorAddress = "127.0.0.1",
    VisitorHttpPort = httpPort,
    VisitorHttpsPort = httpsPort,
    AdminPort = adminPort,
    Connections = { TlsPassthrough = true },
    CaCertificatePath = Path.Combine(directory, "ca.pem"),
    ServerCertificatePath = Path.Combine(directory, "edge.pem"),
    ServerKeyPath = Path.Combine(directory, "edge.key"),
});
await edge.StartAsync();

// The origin's credential as one file, what `tunnel-edge issue` writes: certificate and key, the edge
// CA to pin, where the edge is and the hostname. The origin needs nothing else.
var credentialPath = Path.Combine(directory, "origin.credential.json");
var credential = TunnelCredential.FromCertificate(originCertificate, [hostname, secureHostname], ca.ExportCertificatePem(), [$"127.0.0.1:{edge.TunnelEndPoint.Port}"], "localhost");

// It holds a private key: written owner-only.
WriteOwnerOnly(credentialPath, credential.ToJson() + "\n");

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseTunnelTransport(tunnel =>
{
    tunnel.CredentialPath = credentialPath;
    tunnel.HaConnections = HaConnections;
    tunnel.Hostnames = [hostname];
});

// The passthrough hostname, declared the Kestrel way: only the address differs from a public listener.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenTunnel(secureHostname, TunnelMode.TlsPassthrough, listen => listen.UseHttps(appCertificate)));
var origin = builder.Build();
origin.MapHelloEndpoints();
await origin.StartAsync();

using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
{
    while (edge.TunnelConnectionCount < HaConnections)
    {
        if (wait.IsCancellationRequested)
        {
            Console.Error.WriteLine($"The tunnel did not register {HaConnections} connections within 30 s; see the log above.");
            await origin.StopAsync();
            await edge.StopAsync();
            return 1;
        }

        await Task.Delay(50);
    }
}

var url = $"http://{hostname}:{edge.VisitorEndPoint.Port}/";
Console.WriteLine();
Console.WriteLine($"Tunnel up: {edge.TunnelConnectionCount} connections from HelloOrigin to edge {edge.Options.Name}.");
Console.WriteLine($"  curl {url}");
Console.WriteLine($"  curl --http2-prior-knowledge {url}headers");
Console.WriteLine($"  curl -N {url}stream");
Console.WriteLine($"  (or: curl -H 'Host: {hostname}' http://127.0.0.1:{edge.VisitorEndPoint.Port}/)");
if (edge.VisitorHttpsEndPoint is { } https)
{
    // TLS passthrough: the certificate curl checks is the app's, issued by the demo CA.
    Console.WriteLine($"  curl --cacert {Path.Combine(directory, "ca.pem")} --resolve {secureHostname}:{https.Port}:127.0.0.1 https://{secureHostname}:{https.Port}/headers");
}

if (edge.AdminEndPoint is { } admin)
{
    Console.WriteLine($"Edge status page: http://{admin}/ and Prometheus metrics: http://{admin}/metrics");
}

Console.WriteLine($"Certificates in {directory}; the origin's credential is {credentialPath}. Ctrl+C stops.");
Console.WriteLine();

await origin.WaitForShutdownAsync();
await edge.StopAsync();
Directory.Delete(directory, recursive: true);
return 0;

int IntArg(string name, int fallback)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length && int.TryParse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : fallback;
}

string StringArg(string name, string fallback)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
}

static void WriteOwnerOnly(string path, string text)
{
    var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
    if (!OperatingSystem.IsWindows())
    {
        options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    }

    using var writer = new StreamWriter(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options);
    writer.Write(text);
}
