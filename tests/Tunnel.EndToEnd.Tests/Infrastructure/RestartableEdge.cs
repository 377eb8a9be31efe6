namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>A <c>tunnel-edge serve</c> process that a test kills and starts again on the same tunnel port.</summary>
public sealed class RestartableEdge : IAsyncDisposable
{
    private readonly TestPki _pki;
    private readonly string _name;
    private readonly string _region;
    private EdgeProcess? _process;

    private RestartableEdge(TestPki pki, string name, string region, EdgeProcess process)
    {
        _pki = pki;
        _name = name;
        _region = region;
        _process = process;
        TunnelPort = process.TunnelPort;
    }

    /// <summary>The tunnel port, the same across restarts.</summary>
    public int TunnelPort { get; }

    public static async Task<RestartableEdge> StartAsync(TestPki pki, string name, string region) =>
        new(pki, name, region, await EdgeProcess.StartAsync(pki, name, region));

    /// <summary>SIGKILL, as a crash or an OOM kill would end it.</summary>
    public async Task KillAsync()
    {
        var process = _process ?? throw new InvalidOperationException("The edge is not running.");
        _process = null;
        process.Process.Kill(entireProcessTree: true);
        await process.DisposeAsync();
    }

    /// <summary>Starts the edge again where it was.</summary>
    public async Task RestartAsync()
    {
        if (_process is not null)
        {
            throw new InvalidOperationException("The edge is still running.");
        }

        _process = await EdgeProcess.StartAsync(_pki, _name, _region, TunnelPort);
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            await process.DisposeAsync();
        }
    }
}
