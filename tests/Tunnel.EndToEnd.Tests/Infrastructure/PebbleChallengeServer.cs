using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Debian's <c>pebble-challtestsrv</c> as a real DNS server (UDP and TCP on loopback) that answers every A
/// query with 127.0.0.1 and holds the TXT records the edge publishes through its management API: the
/// test's stand-in for the operator's zone, behind <see cref="IDnsChallengeRecords"/>. Its HTTP-01 and
/// TLS-ALPN-01 servers are off: the edge answers those itself.
/// </summary>
public sealed class PebbleChallengeServer : IDnsChallengeRecords, IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly HttpClient _management;
    private readonly Dictionary<string, List<string>> _txt = new(StringComparer.Ordinal);
    private readonly List<string> _output = [];

    private PebbleChallengeServer(Process process, int dnsPort, int managementPort)
    {
        _process = process;
        DnsEndPoint = new IPEndPoint(IPAddress.Loopback, dnsPort);
        _management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public IPEndPoint DnsEndPoint { get; }

    /// <summary>Every TXT record set so far (name, value), removed ones included: what the edge published.</summary>
    public List<(string Name, string Value)> Published { get; } = [];

    public static async Task<PebbleChallengeServer> StartAsync()
    {
        Cli.Require("pebble-challtestsrv");
        var dnsPort = PebbleProcess.FreePort();
        var managementPort = PebbleProcess.FreePort();
        var start = new ProcessStartInfo("pebble-challtestsrv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in (string[])["-dns01", $"127.0.0.1:{dnsPort}", "-management", $"127.0.0.1:{managementPort}", "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1"])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Cannot start pebble-challtestsrv (apt-get install pebble).");
        var server = new PebbleChallengeServer(process, dnsPort, managementPort);
        DataReceivedEventHandler collect = (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (server._output)
                {
                    server._output.Add(e.Data);
                }
            }
        };
        process.OutputDataReceived += collect;
        process.ErrorDataReceived += collect;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        // Ready when the management API answers.
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            try
            {
                using var response = await server._management.PostAsync("/clear-txt", new StringContent("""{"host":"ready.example.test."}"""));
                if (response.IsSuccessStatusCode)
                {
                    return server;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline && !process.HasExited)
            {
            }

            if (DateTime.UtcNow >= deadline || process.HasExited)
            {
                throw new InvalidOperationException("pebble-challtestsrv did not start: " + string.Join('\n', server._output));
            }

            await Task.Delay(50);
        }
    }

    public async Task SetTxtAsync(string name, string value, CancellationToken ct)
    {
        lock (_txt)
        {
            Published.Add((name, value));
            (_txt.TryGetValue(name, out var values) ? values : _txt[name] = []).Add(value);
        }

        await PostAsync("/set-txt", name, value, ct);
    }

    public async Task RemoveTxtAsync(string name, string value, CancellationToken ct)
    {
        string[] remaining;
        lock (_txt)
        {
            remaining = _txt.TryGetValue(name, out var values) && values.Remove(value) ? [.. values] : [.. values ?? []];
        }

        // The server clears a name's values all at once: clear, then put back the others.
        await PostAsync("/clear-txt", name, null, ct);
        foreach (var other in remaining)
        {
            await PostAsync("/set-txt", name, other, ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _management.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
    }

    private async Task PostAsync(string path, string name, string? value, CancellationToken ct)
    {
        var body = new JsonObject { ["host"] = name.TrimEnd('.') + "." };
        if (value is not null)
        {
            body["value"] = value;
        }

        using var response = await _management.PostAsync(path, new StringContent(body.ToJsonString()), ct);
        response.EnsureSuccessStatusCode();
    }
}
