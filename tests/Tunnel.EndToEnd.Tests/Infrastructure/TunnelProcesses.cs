using System.Diagnostics;
using System.Globalization;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// The edge (<c>tunnel-edge serve</c>) and HelloOrigin as separate processes, started from the built
/// binaries the way an operator runs them, so each one's memory can be measured on its own.
/// </summary>
public sealed class TunnelProcesses : IAsyncDisposable
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

    private EdgeProcess? _edge;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output) + "\n[edge] " + _edge?.Output;
            }
        }
    }

    public static async Task<TunnelProcesses> StartAsync(string hostname)
    {
        var processes = new TunnelProcesses(new TestPki());
        var edge = await EdgeProcess.StartAsync(processes.Pki, "proc-edge", "");
        processes._edge = edge;
        processes.Edge = edge.Process;
        processes.VisitorPort = edge.VisitorPort;
        var tunnelPort = edge.TunnelPort;

        var (certificate, key) = processes.Pki.IssueOrigin(hostname);
        processes.Origin = processes.Start("origin", Path.Combine(AppContext.BaseDirectory, "HelloOrigin.dll"), [],
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
        if (_edge is not null)
        {
            await _edge.DisposeAsync();
        }

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
}
