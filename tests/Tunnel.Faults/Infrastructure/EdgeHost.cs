using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Tunnel.Faults.Infrastructure;

/// <summary><c>tunnel-edge serve</c> as a process, optionally inside a namespace, optionally with an <c>Edge</c> configuration section.</summary>
public sealed partial class EdgeHost : IAsyncDisposable
{
    private EdgeHost(ServiceProcess process, IPEndPoint tunnel, IPEndPoint visitor)
    {
        Process = process;
        TunnelEndPoint = tunnel;
        VisitorEndPoint = visitor;
    }

    public ServiceProcess Process { get; }

    public IPEndPoint TunnelEndPoint { get; }

    public IPEndPoint VisitorEndPoint { get; }

    /// <param name="ports">Fixed tunnel and visitor ports (to restart an edge where origins and visitors know it); 0 lets the OS pick.</param>
    public static async Task<EdgeHost> StartAsync(TestPki pki, string name, object? edgeSection = null, NetworkNamespace? inNamespace = null, (int Tunnel, int Visitor) ports = default)
    {
        var arguments = new List<string>
        {
            "serve", "--dir", pki.Directory, "--listen", "127.0.0.1", "--tunnel-port", ports.Tunnel.ToString(CultureInfo.InvariantCulture),
            "--http-port", ports.Visitor.ToString(CultureInfo.InvariantCulture), "--admin-port", "-1", "--name", name, "--region", "r1",
        };
        if (edgeSection is not null)
        {
            var config = Path.Combine(pki.Directory, $"{name}-{Guid.NewGuid():N}.json");
            await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new { Edge = edgeSection }));
            arguments.AddRange(["--config", config]);
        }

        var process = ServiceProcess.StartDotnet(name, "tunnel-edge.dll", arguments, inNamespace: inNamespace);
        try
        {
            var ready = await process.WaitForLineAsync(ReadyLine(), TimeSpan.FromSeconds(60));
            return new EdgeHost(process,
                new IPEndPoint(IPAddress.Loopback, int.Parse(ready.Groups["tunnel"].Value, CultureInfo.InvariantCulture)),
                new IPEndPoint(IPAddress.Loopback, int.Parse(ready.Groups["visitor"].Value, CultureInfo.InvariantCulture)));
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => Process.DisposeAsync();

    [GeneratedRegex(@"tunnels on [^\s]+:(?<tunnel>\d+), visitors on http://[^\s]+:(?<visitor>\d+)")]
    private static partial Regex ReadyLine();
}
