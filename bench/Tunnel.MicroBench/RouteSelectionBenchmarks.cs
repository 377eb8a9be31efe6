using System.Net.Security;
using BenchmarkDotNet.Attributes;
using Tunnel.Edge;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Tunnels;

namespace Tunnel.MicroBench;

/// <summary>
/// Choosing a tunnel connection for a visitor's host: exact name, then the wildcard. The baseline is
/// the least any router does: one lookup of the host as given in a concurrent dictionary, taking its
/// first connection, with no normalising of the name and no comparison of the connections' loads.
/// </summary>
[MemoryDiagnoser]
public class RouteSelectionBenchmarks
{
    private readonly RouteTable _routes = new();
    private readonly List<TunnelConnection> _connections = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TunnelConnection[]> _plain = new(StringComparer.Ordinal);

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

        _plain["app.example.com"] = [.. _connections];
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }

    [Benchmark(Baseline = true)]
    public object? LookupFirst() => _plain.TryGetValue("app.example.com", out var candidates) ? candidates[0] : null;

    [Benchmark]
    public object? PickExact() => _routes.Pick("app.example.com");

    [Benchmark]
    public object? PickWildcard() => _routes.Pick("shop.example.org");
}
