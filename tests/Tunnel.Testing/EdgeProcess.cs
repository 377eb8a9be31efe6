using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Tunnel.Testing;

/// <summary>A <c>tunnel-edge serve</c> process, so a test can kill it or send it SIGTERM.</summary>
public sealed partial class EdgeProcess : IAsyncDisposable
{
    private readonly List<string> _output = [];

    private EdgeProcess(Process process)
    {
        Process = process;
    }

    public Process Process { get; }

    public int TunnelPort { get; private set; }

    public int VisitorPort { get; private set; }

    /// <summary>The admin port (status page, <c>/metrics</c>, admin API); 0 when it is off.</summary>
    public int AdminPort { get; private set; }

    /// <summary>The inter-edge port, 0 when the edge is not in a cluster.</summary>
    public int PeerPort { get; private set; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output);
            }
        }
    }

    public static Task<EdgeProcess> StartAsync(TestPki pki, string name, string region, params string[] extraArguments) =>
        StartAsync(pki.Directory, name, region, extraArguments);

    /// <summary>Starts an edge whose tunnel port is <paramref name="tunnelPort"/> (an edge restarted where it was).</summary>
    public static Task<EdgeProcess> StartAsync(TestPki pki, string name, string region, int tunnelPort) =>
        StartAsync(pki.Directory, name, region, tunnelPort, []);

    /// <summary>Starts <c>tunnel-edge serve --dir <paramref name="directory"/></c> on loopback ports the OS picks.</summary>
    public static Task<EdgeProcess> StartAsync(string directory, string name, string region, params string[] extraArguments) =>
        StartAsync(directory, name, region, 0, extraArguments);

    private static async Task<EdgeProcess> StartAsync(string directory, string name, string region, int tunnelPort, string[] extraArguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        // The defaults below give way to the same flag among the extra arguments (another loopback address, a fixed port).
        string[] defaults = ["--listen", "127.0.0.1", "--tunnel-port", tunnelPort.ToString(CultureInfo.InvariantCulture), "--http-port", "0", "--admin-port", "0"];
        foreach (var argument in (string[])[Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--dir", directory,
            .. defaults.Chunk(2).Where(d => !extraArguments.Contains(d[0])).SelectMany(d => d), "--name", name, "--region", region, .. extraArguments])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Cannot start tunnel-edge.");
        var edge = new EdgeProcess(process);
        var ready = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        DataReceivedEventHandler handler = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (edge._output)
            {
                edge._output.Add(e.Data);
            }

            var match = ReadyLine().Match(e.Data);
            if (match.Success)
            {
                ready.TrySetResult(match);
            }
        };
        process.OutputDataReceived += handler;
        process.ErrorDataReceived += handler;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // An edge that refuses its configuration exits at once: say why rather than wait out the timeout.
        await Task.WhenAny(ready.Task, process.WaitForExitAsync()).WaitAsync(TimeSpan.FromSeconds(30));
        if (!ready.Task.IsCompleted)
        {
            process.WaitForExit(1000);
            throw new InvalidOperationException($"tunnel-edge exited with code {process.ExitCode} before it was ready:\n{edge.Output}");
        }

        var line = await ready.Task;
        edge.TunnelPort = int.Parse(line.Groups["tunnel"].Value, CultureInfo.InvariantCulture);
        edge.VisitorPort = int.Parse(line.Groups["visitor"].Value, CultureInfo.InvariantCulture);
        edge.AdminPort = line.Groups["admin"].Success ? int.Parse(line.Groups["admin"].Value, CultureInfo.InvariantCulture) : 0;
        edge.PeerPort = PeerPart().Match(line.Result("$_")) is { Success: true } peer ? int.Parse(peer.Groups["port"].Value, CultureInfo.InvariantCulture) : 0;
        return edge;
    }

    /// <summary>Sends SIGTERM, as a service manager does on stop.</summary>
    public async Task TerminateAsync()
    {
        var result = await Cli.RunAsync("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
        Assert.Equal(0, result.ExitCode);
    }

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        Process.Dispose();
    }

    [GeneratedRegex(@"tunnels on [^\s]+:(?<tunnel>\d+), visitors on http://[^\s]+:(?<visitor>\d+)(.*admin API on http://[^\s]+:(?<admin>\d+)/)?")]
    private static partial Regex ReadyLine();

    [GeneratedRegex(@"peers on https://[^\s]+:(?<port>\d+)")]
    private static partial Regex PeerPart();
}
