using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A real BIND <c>named</c> (Debian's <c>bind9</c>) as the operator's DNS: one primary zone that takes
/// dynamic updates signed with a TSIG key (hmac-sha256, <c>allow-update { key ...; }</c>), on 127.0.0.1
/// and a free port (UDP and TCP), everything in a temporary directory. It runs in the foreground as
/// the current user (<c>named -g -c FILE</c>, no <c>-u</c>: dropping to the <c>bind</c> user would lose
/// access to the directory, and a user who is not root cannot switch users anyway); <c>-g</c> logs to
/// standard error, kept in <see cref="Log"/>, where each applied update shows as
/// <c>updating zone ...: adding an RR at ...</c>. It can be stopped and started again on the same port
/// with the zone's journal. Clients: <c>dig</c> and <c>nsupdate</c> (Debian's <c>bind9-dnsutils</c>).
/// </summary>
public sealed class NamedProcess : IAsyncDisposable
{
    public const string ExecutablePath = "/usr/sbin/named";
    public const string DigPath = "/usr/bin/dig";
    public const string NsupdatePath = "/usr/bin/nsupdate";

    // named loads a small zone in well under a second; more means something is wrong.
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(10);

    // A port picked free can be taken before named binds it: a few attempts, never forever.
    private const int MaxStartAttempts = 5;

    private readonly ConcurrentQueue<string> _log = new();
    private Process? _process;

    private NamedProcess(string directory, string zone, string keyName, string secret)
    {
        Directory = directory;
        Zone = zone;
        KeyName = keyName;
        Secret = secret;
    }

    /// <summary>The temporary directory with the configuration, the zone file and its journal.</summary>
    public string Directory { get; }

    /// <summary>The zone, e.g. <c>example.test</c>.</summary>
    public string Zone { get; }

    /// <summary>The TSIG key's name.</summary>
    public string KeyName { get; }

    /// <summary>The TSIG secret, base64.</summary>
    public string Secret { get; }

    /// <summary>The key file, as <c>tsig-keygen</c> writes it (for <c>nsupdate -k</c> and the edge's <c>KeySecretPath</c>).</summary>
    public string KeyFilePath => Path.Combine(Directory, "tsig.key");

    /// <summary>The port named listens on (UDP and TCP), on 127.0.0.1.</summary>
    public int Port { get; private set; }

    /// <summary>The <c>Server</c> the edge is given: <c>127.0.0.1:PORT</c>.</summary>
    public string Server => $"127.0.0.1:{Port}";

    /// <summary>Everything named logged, across restarts.</summary>
    public string Log => string.Join('\n', _log);

    /// <summary>
    /// Starts named with zone <paramref name="zone"/> holding an SOA, an NS and <paramref name="records"/>
    /// (zone file lines such as <c>taken 60 IN CNAME elsewhere.example.org.</c>).
    /// </summary>
    public static async Task<NamedProcess> StartAsync(string zone = "example.test", string keyName = "edge-key", params string[] records)
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"These tests need BIND's named at {ExecutablePath} (Debian: apt-get install bind9 bind9-dnsutils; tests/install-tools.sh does).");
        }

        var directory = System.IO.Directory.CreateTempSubdirectory("tunnel-named-").FullName;
        var named = new NamedProcess(directory, zone, keyName, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        await File.WriteAllTextAsync(named.KeyFilePath, $"key \"{keyName}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{named.Secret}\";\n}};\n");
        var zoneFile = new StringBuilder()
            .Append("$TTL 60\n")
            .Append($"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 60\n")
            .Append($"@ IN NS ns.{zone}.\n")
            .Append("ns IN A 127.0.0.1\n");
        foreach (var record in records)
        {
            zoneFile.Append(record).Append('\n');
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "zone.db"), zoneFile.ToString());
        await named.StartOnAsync(port: null);
        return named;
    }

    /// <summary>Kills named (the DNS server is "down"); <see cref="StartAgainAsync"/> brings it back on the same port.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            using var exit = new CancellationTokenSource(ClientTimeout);
            await process.WaitForExitAsync(exit.Token);
        }
    }

    /// <summary>Starts named again on the same port and zone (with the journal of the updates so far).</summary>
    public Task StartAgainAsync() => StartOnAsync(Port);

    /// <summary><c>dig @127.0.0.1 -p PORT +short NAME TYPE</c>: the answer's values, one per line (empty when there is none).</summary>
    public async Task<string[]> DigAsync(string name, string type)
    {
        var (exitCode, output) = await RunAsync(DigPath, ["@127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "+short", "+time=2", "+tries=1", name, type], stdin: null);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"dig {name} {type} exited with {exitCode}: {output}");
        }

        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>Runs <c>nsupdate</c> (signed with the zone's key when <paramref name="signed"/>) with <paramref name="commands"/> for this server and zone; returns its exit code and output.</summary>
    public Task<(int ExitCode, string Output)> NsupdateAsync(bool signed, params string[] commands)
    {
        var script = $"server 127.0.0.1 {Port}\nzone {Zone}\n{string.Join('\n', commands)}\nsend\n";
        return RunAsync(NsupdatePath, signed ? ["-k", KeyFilePath] : [], script);
    }

    /// <summary>How many lines of named's log contain <paramref name="text"/>.</summary>
    public int CountInLog(string text) => _log.Count(line => line.Contains(text, StringComparison.Ordinal));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }

        _process?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task StartOnAsync(int? port)
    {
        var failures = new List<string>();
        for (var attempt = 0; attempt < MaxStartAttempts; attempt++)
        {
            var chosen = port ?? FreePort();
            var error = await TryStartAsync(chosen);
            if (error is null)
            {
                Port = chosen;
                return;
            }

            failures.Add(error);
            await Task.Delay(200);
        }

        throw new InvalidOperationException("named did not start:\n" + string.Join("\n---\n", failures));
    }

    private async Task<string?> TryStartAsync(int port)
    {
        var configuration = Path.Combine(Directory, "named.conf");
        await File.WriteAllTextAsync(configuration, $$"""
            include "{{KeyFilePath}}";
            options {
                directory "{{Directory}}";
                pid-file "{{Path.Combine(Directory, "named.pid")}}";
                session-keyfile "{{Path.Combine(Directory, "session.key")}}";
                listen-on port {{port}} { 127.0.0.1; };
                listen-on-v6 { none; };
                recursion no;
                dnssec-validation no;
                notify no;
            };
            controls { };
            zone "{{Zone}}" {
                type primary;
                file "zone.db";
                allow-update { key "{{KeyName}}"; };
            };
            """);
        var start = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-g", "-c", configuration, "-n", "1" })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lines = new ConcurrentQueue<string>();
        void OnLine(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is { } line)
            {
                lines.Enqueue(line);
                _log.Enqueue(line);
                if (line.EndsWith(" running", StringComparison.Ordinal))
                {
                    running.TrySetResult();
                }
            }
        }

        process.ErrorDataReceived += OnLine;
        process.OutputDataReceived += OnLine;
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var exited = process.WaitForExitAsync();
        if (await Task.WhenAny(running.Task, exited, Task.Delay(StartTimeout)) == running.Task)
        {
            _process = process;
            return null;
        }

        if (!process.HasExited)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        process.Dispose();
        return $"port {port}:\n" + string.Join('\n', lines.TakeLast(15));
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string path, string[] arguments, string? stdin)
    {
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"These tests need {path} (Debian: apt-get install bind9-dnsutils).");
        }

        var start = new ProcessStartInfo(path) { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = stdin is not null, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        using var timeout = new CancellationTokenSource(ClientTimeout);
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await output + await error).Trim());
    }

    /// <summary>A port free for both TCP and UDP on 127.0.0.1 just now.</summary>
    private static int FreePort()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            using var tcp = new TcpListener(IPAddress.Loopback, 0);
            tcp.Start();
            var port = ((IPEndPoint)tcp.LocalEndpoint).Port;
            try
            {
                using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException)
            {
                // Taken for UDP: another.
            }
        }

        throw new InvalidOperationException("No port free for both TCP and UDP on 127.0.0.1 after 20 tries.");
    }
}
