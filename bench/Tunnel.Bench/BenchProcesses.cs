using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Tunnel.Bench;

/// <summary>
/// Every process the benchmark starts, so that all of them are stopped at the end, even on failure.
/// Each pid is also written to <c>BENCH_PIDFILE</c> so bench/run's trap can stop what a crashed driver left.
/// </summary>
internal sealed class BenchProcesses : IAsyncDisposable
{
    private readonly List<BenchProcess> _processes = [];
    private readonly string? _pidFile = Environment.GetEnvironmentVariable("BENCH_PIDFILE");

    public BenchProcess Start(string name, string file, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {file}.");
        if (_pidFile is not null)
        {
            File.AppendAllText(_pidFile, process.Id.ToString(CultureInfo.InvariantCulture) + "\n");
        }

        var bench = new BenchProcess(name, process);
        lock (_processes)
        {
            _processes.Add(bench);
        }

        return bench;
    }

    /// <summary>Starts a .NET app from a dll beside the driver.</summary>
    public BenchProcess StartDotnet(string name, string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        Start(name, "dotnet", [Path.Combine(AppContext.BaseDirectory, dll), .. arguments], environment);

    public async ValueTask DisposeAsync()
    {
        List<BenchProcess> all;
        lock (_processes)
        {
            all = [.. _processes];
            _processes.Clear();
        }

        foreach (var process in Enumerable.Reverse(all))
        {
            await process.StopAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A free TCP port on loopback (the OS picks it; another process could take it before use).</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>Waits until something accepts TCP connections on the port.</summary>
    public static async Task WaitForPortAsync(int port, TimeSpan timeout, BenchProcess? owner = null)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
                return;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline && owner?.HasExited != true)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new InvalidOperationException($"Nothing listens on port {port}{(owner is null ? "" : $" ({owner.Name}: {owner.Tail()})")}.", ex);
            }
        }
    }
}

/// <summary>One started process and the tail of its output.</summary>
internal sealed class BenchProcess
{
    private readonly Queue<string> _lines = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _waiters = [];

    public BenchProcess(string name, Process process)
    {
        Name = name;
        Process = process;
        DataReceivedEventHandler handler = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_lines)
            {
                _lines.Enqueue(e.Data);
                if (_lines.Count > 200)
                {
                    _lines.Dequeue();
                }

                foreach (var (pattern, seen) in _waiters)
                {
                    var match = pattern.Match(e.Data);
                    if (match.Success)
                    {
                        seen.TrySetResult(match);
                    }
                }
            }
        };
        process.OutputDataReceived += handler;
        process.ErrorDataReceived += handler;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }

    public Process Process { get; }

    public int Id => Process.Id;

    public bool HasExited => Process.HasExited;

    public string Tail(int count = 15)
    {
        lock (_lines)
        {
            return string.Join("\n", _lines.TakeLast(count));
        }
    }

    /// <summary>Waits for an output line matching <paramref name="pattern"/> (lines already seen count).</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lines)
        {
            foreach (var line in _lines)
            {
                var match = pattern.Match(line);
                if (match.Success)
                {
                    return match;
                }
            }

            _waiters.Add((pattern, seen));
        }

        var exited = Process.WaitForExitAsync();
        var first = await Task.WhenAny(seen.Task, exited, Task.Delay(timeout)).ConfigureAwait(false);
        if (first == seen.Task)
        {
            return await seen.Task.ConfigureAwait(false);
        }

        throw new InvalidOperationException($"{Name} {(first == exited ? "exited" : "did not print the expected line in time")}; its output ends:\n{Tail()}");
    }

    /// <summary>The resident set (VmRSS) in bytes, from /proc.</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("No VmRSS line.");
    }

    /// <summary>SIGKILL, as a crash or the OOM killer would.</summary>
    public void KillHard() => Process.Kill(entireProcessTree: true);

    public async Task StopAsync()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine($"Could not stop {Name} ({Process.Id}): {ex.Message}");
        }
    }
}
