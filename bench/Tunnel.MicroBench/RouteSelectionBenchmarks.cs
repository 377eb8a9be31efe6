using System.Net.Security;
using BenchmarkDotNet.Attributes;
using Tunnel.Edge;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Tunnels;

namespace Tunnel.MicroBench;

/// <summary>Choosing a tunnel connection for a visitor's host: exact name, then the wildcard.</summary>
[MemoryDiagnoser]
public class RouteSelectionBenchmarks
{
    private readonly RouteTable _routes = new();
    private readonly List<TunnelConnection> _connections = [];

    /// <summary>Tunnel connections registered for the host (4 is the plugin's default).</summary>
    [Params(4, 64)]
    public int Connections { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new EdgeOptions();
        for (var i = 0; i < Connections; i++)
        {
            // Never used for I/O: selection reads only the connection's state.
            var stream = new SslStream(new MemoryStream());
            var connection = new TunnelConnection($"c{i}", $"connector{i % 2}", i, ["app.example.com", "*.example.org"], null, stream, options, TimeProvider.System);
            _connections.Add(connection);
            _routes.Add(connection);
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }

    [Benchmark]
    public TunnelConnection? PickExact() => _routes.Pick("app.example.com");

    [Benchmark]
    public TunnelConnection? PickWildcard() => _routes.Pick("shop.example.org");
}
