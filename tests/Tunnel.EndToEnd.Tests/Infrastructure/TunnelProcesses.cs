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

    /// <summary>
    /// Starts the edge and HelloOrigin. With <paramref name="credentialFile"/> the origin's only tunnel
    /// setting is <c>Tunnel__CredentialPath</c>, naming a credential file as <c>tunnel-edge issue</c> writes it.
    /// </summary>
    public static async Task<TunnelProcesses> StartAsync(string hostname, bool credentialFile = false)
    {
        var processes = new TunnelProcesses(new TestPki());
        var edge = await EdgeProcess.StartAsync(processes.Pki, "proc-edge", "");
        processes._edge = edge;
        processes.Edge = edge.Process;
        processes.VisitorPort = edge.VisitorPort;
        var tunnelPort = edge.TunnelPort;

        var environment = new Dictionary<string, string>
        {
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__Tunnel.Transport"] = "Information",
        };
        if (credentialFile)
        {
            var path = Path.Combine(processes.Pki.Directory, "origin.credential.json");
            TestPki.WriteCredentialAtomically(path, processes.Pki.CreateCredential([hostname], [$"127.0.0.1:{tunnelPort}"]));
            environment["Tunnel__CredentialPath"] = path;
        }
        else
        {
            var (certificate, key) = processes.Pki.IssueOrigin(hostname);
            environment["Tunnel__Edges__0"] = $"127.0.0.1:{tunnelPort}";
            environment["Tunnel__Hostnames__0"] = hostname;
            environment["Tunnel__CertificatePath"] = certificate;
            environment["Tunnel__CertificateKeyPath"] = key;
            environment["Tunnel__EdgeCaPath"] = processes.Pki.CaPath;
            environment["Tunnel__EdgeServerName"] = "localhost";
        }

        processes.Origin = processes.Start("origin", Path.Combine(AppContext.BaseDirectory, "HelloOrigin.dll"), [], environment, _ => { });
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
