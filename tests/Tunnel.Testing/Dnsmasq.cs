using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.Testing;

/// <summary>
/// A real dnsmasq serving only the records a test gives it, on 127.0.0.1 and a free high port, UDP and
/// TCP. Killed on dispose; every wait is bounded.
/// </summary>
public sealed class Dnsmasq : IDisposable
{
    public const string ExecutablePath = "/usr/sbin/dnsmasq";

    // dnsmasq binds and logs "started" in well under a second; more means something is wrong.
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(5);

    // A port picked free can be taken before dnsmasq binds it; and a restart on the same port may
    // briefly find it still held. Both are retried a few times, never forever.
    private const int MaxStartAttempts = 5;
    private static readonly TimeSpan RebindDelay = TimeSpan.FromMilliseconds(100);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log;

    private Dnsmasq(Process process, ConcurrentQueue<string> log, int port, int ttl, string[] records, bool localZone)
    {
        _process = process;
        _log = log;
        Port = port;
        Ttl = ttl;
        Records = records;
        LocalZone = localZone;
    }

    public int Port { get; }

    public int Ttl { get; }

    public string[] Records { get; }

    /// <summary>Whether unknown names under example.test are NXDOMAIN; otherwise, with no upstream, REFUSED.</summary>
    public bool LocalZone { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    public string Log => string.Join(Environment.NewLine, _log);

    /// <summary>Starts dnsmasq with TTL <paramref name="ttl"/> and dnsmasq options such as <c>--srv-host=...</c>.</summary>
    public static Task<Dnsmasq> StartAsync(int ttl, string[] records, bool localZone = true) => StartOnAsync(port: null, ttl, records, localZone);

    /// <summary>Stops this one and starts another on the same port with other records.</summary>
    public async Task<Dnsmasq> RestartAsync(params string[] records)
    {
        Stop();
        return await StartOnAsync(Port, Ttl, records, LocalZone);
    }

    public void Stop()
    {
        if (_process.HasExited)
        {
            return;
        }

        _process.Kill();
        if (!_process.WaitForExit(ExitTimeout))
        {
            throw new TimeoutException($"dnsmasq (pid {_process.Id}) did not exit within {ExitTimeout.TotalSeconds} s of being killed.");
        }
    }

    public void Dispose()
    {
        try
        {
            Stop();
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped: nothing to stop.
        }

        _process.Dispose();
    }

    private static async Task<Dnsmasq> StartOnAsync(int? port, int ttl, string[] records, bool localZone)
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"These tests need dnsmasq at {ExecutablePath} (Debian: apt-get install dnsmasq).");
        }

        var failures = new List<string>();
        for (var attempt = 0; attempt < MaxStartAttempts; attempt++)
        {
            var chosen = port ?? FreePort();
            var (started, error) = await TryStartAsync(chosen, ttl, records, localZone);
            if (started is not null)
            {
                return started;
            }

            failures.Add(error);
            await Task.Delay(RebindDelay);
        }

        throw new InvalidOperationException("dnsmasq did not start: " + string.Join(Environment.NewLine, failures));
    }

    private static async Task<(Dnsmasq? Started, string Error)> TryStartAsync(int port, int ttl, string[] records, bool localZone)
    {
        var start = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            "--no-daemon",            // stay in the foreground, as our child
            "--conf-file=/dev/null",  // no system configuration
            "--no-resolv",            // no upstream servers: only our records
            "--no-hosts",             // not /etc/hosts either
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            $"--port={port}",
            $"--local-ttl={ttl}",
            "--log-facility=-",       // log to stderr, which we keep for failure messages
            "--log-queries",
            "--pid-file=",            // no pid file
            $"--user={Environment.UserName}", // as root, dnsmasq would otherwise switch to "nobody"
        })
        {
            start.ArgumentList.Add(argument);
        }

        if (localZone)
        {
            // Unknown names in our zone are NXDOMAIN; without this, with no upstream, REFUSED.
            start.ArgumentList.Add("--local=/example.test/");
        }

        foreach (var record in records)
        {
            start.ArgumentList.Add(record);
        }

        var log = new ConcurrentQueue<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetResult();
                return;
            }

            log.Enqueue(e.Data);
            if (e.Data.Contains("started, version", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                log.Enqueue(e.Data);
            }
        };
        process.Exited += (_, _) => ready.TrySetResult();
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();

        var signalled = await Task.WhenAny(ready.Task, Task.Delay(StartTimeout)) == ready.Task;
        if (!signalled || process.HasExited)
        {
            try
            {
                process.Kill();
                process.WaitForExit(ExitTimeout);
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
            return (null, $"port {port}: " + string.Join(" | ", log));
        }

        return (new Dnsmasq(process, log, port, ttl, records, localZone), "");
    }

    /// <summary>A port free for both UDP and TCP on 127.0.0.1 at this moment.</summary>
    private static int FreePort()
    {
        for (var attempt = 0; attempt < MaxStartAttempts * 4; attempt++)
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)udp.LocalEndPoint!).Port;
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                tcp.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException)
            {
                // Taken for TCP: try another.
            }
        }

        throw new InvalidOperationException("No port free for both UDP and TCP on 127.0.0.1.");
    }
}
