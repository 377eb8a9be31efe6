using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// A long-running process the suite starts (the edge, an origin), optionally inside a network
/// namespace, with its output kept so a test can wait for a line and show it on failure.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly List<string> _output = [];
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _waiters = [];

    private ServiceProcess(string name, Process process)
    {
        Name = name;
        Process = process;
    }

    public string Name { get; }

    public Process Process { get; }

    /// <summary>The process's own id (with a namespace, <c>ip netns exec</c> execs into it, so the id is the same).</summary>
    public int Id => Process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output.Select(line => $"[{Name}] {line}"));
            }
        }
    }

    /// <summary>Starts <c>dotnet DLL ARGS</c> from the test's output directory.</summary>
    public static ServiceProcess StartDotnet(string name, string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, NetworkNamespace? inNamespace = null) =>
        Start(name, "dotnet", [Path.Combine(AppContext.BaseDirectory, dll), .. arguments], environment, inNamespace);

    public static ServiceProcess Start(string name, string file, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, NetworkNamespace? inNamespace = null)
    {
        var start = new ProcessStartInfo(inNamespace is null ? file : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        if (inNamespace is not null)
        {
            foreach (var argument in (string[])["netns", "exec", inNamespace.Name, file])
            {
                start.ArgumentList.Add(argument);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {file}.");
        var service = new ServiceProcess(name, process);
        DataReceivedEventHandler handler = (_, e) =>
        {
            if (e.Data is not null)
            {
                service.OnLine(e.Data);
            }
        };
        process.OutputDataReceived += handler;
        process.ErrorDataReceived += handler;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return service;
    }

    /// <summary>Waits for the first line (already printed or yet to come) that matches.</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            foreach (var line in _output)
            {
                if (pattern.Match(line) is { Success: true } match)
                {
                    return match;
                }
            }

            _waiters.Add((pattern, seen));
        }

        try
        {
            return await seen.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{Name} printed no line matching /{pattern}/ within {timeout.TotalSeconds:0} s (exited: {Process.HasExited}).\n{Output}");
            throw;
        }
    }

    public int CountLines(Regex pattern)
    {
        lock (_output)
        {
            return _output.Count(pattern.IsMatch);
        }
    }

    public async Task KillAsync()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15));
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
        }

        Process.Dispose();
    }

    private void OnLine(string line)
    {
        lock (_output)
        {
            _output.Add(line);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Pattern.Match(line) is { Success: true } match)
                {
                    _waiters[i].Seen.TrySetResult(match);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
