using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// The edge (<c>tunnel-edge serve</c>) and HelloOrigin as separate processes, started from the built
/// binaries the way an operator runs them, so each one's memory can be measured on its own.
/// </summary>
public sealed partial class TunnelProcesses : IAsyncDisposable
{
    private readonly List<Process> _processes = [];
    private readonly List<string> _output = [];

    private TunnelProcesses(TestPki pki)
    {
        Pki = pki;
    }

    public TestPki Pki { get; }

    public Process Edge { get; private set; } = null!;

    public Process Origin { get; private set; } = null!;

    public int VisitorPort { get; private set; }

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

    public static async Task<TunnelProcesses> StartAsync(string hostname)
    {
        var processes = new TunnelProcesses(new TestPki());
        var directory = AppContext.BaseDirectory;
        var visitorLine = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        processes.Edge = processes.Start("edge", Path.Combine(directory, "tunnel-edge.dll"),
            ["serve", "--dir", processes.Pki.Directory, "--listen", "127.0.0.1", "--tunnel-port", "0", "--http-port", "0", "--admin-port", "0", "--name", "proc-edge"],
            new Dictionary<string, string>(),
            line =>
            {
                var match = EdgeReadyLine().Match(line);
                if (match.Success)
                {
                    visitorLine.TrySetResult(match);
                }
            });

        var ready = await visitorLine.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var tunnelPort = int.Parse(ready.Groups["tunnel"].Value, CultureInfo.InvariantCulture);
        processes.VisitorPort = int.Parse(ready.Groups["visitor"].Value, CultureInfo.InvariantCulture);

        var (certificate, key) = processes.Pki.IssueOrigin(hostname);
        processes.Origin = processes.Start("origin", Path.Combine(directory, "HelloOrigin.dll"), [],
            new Dictionary<string, string>
            {
                ["Tunnel__Edges__0"] = $"127.0.0.1:{tunnelPort}",
                ["Tunnel__Hostnames__0"] = hostname,
                ["Tunnel__CertificatePath"] = certificate,
                ["Tunnel__CertificateKeyPath"] = key,
                ["Tunnel__EdgeCaPath"] = processes.Pki.CaPath,
                ["Tunnel__EdgeServerName"] = "localhost",
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Tunnel.Transport"] = "Information",
            },
            _ => { });
        return processes;
    }

    /// <summary>The peak resident set (VmHWM) of a process, in bytes.</summary>
    public static long PeakWorkingSet(Process process)
    {
        foreach (var line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("No VmHWM line.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in Enumerable.Reverse(_processes))
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }

            process.Dispose();
        }

        Pki.Dispose();
    }

    private Process Start(string name, string dll, string[] arguments, IReadOnlyDictionary<string, string> environment, Action<string> onLine)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {dll}.");
        _processes.Add(process);
        DataReceivedEventHandler handler = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_output)
            {
                _output.Add($"[{name}] {e.Data}");
            }

            onLine(e.Data);
        };
        process.OutputDataReceived += handler;
        process.ErrorDataReceived += handler;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    [GeneratedRegex(@"tunnels on [^\s]+:(?<tunnel>\d+), visitors on http://[^\s]+:(?<visitor>\d+)")]
    private static partial Regex EdgeReadyLine();
}
