using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A real Prometheus server (Debian's <c>prometheus</c>) on a free loopback port, scraping the given
/// targets every second into a temporary directory; killed and its directory removed on dispose.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    public const string ExecutablePath = "/usr/bin/prometheus";

    private readonly Process _process;
    private readonly string _directory;
    private readonly StringBuilder _output = new();
    private readonly HttpClient _http;

    private PrometheusServer(Process process, string directory, Uri address)
    {
        _process = process;
        _directory = directory;
        Address = address;
        _http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(5) };
    }

    public Uri Address { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts Prometheus with one scrape job per entry (job name, then <c>host:port</c> targets) and waits until it is ready.</summary>
    public static async Task<PrometheusServer> StartAsync(IReadOnlyDictionary<string, string[]> jobs)
    {
        var directory = Directory.CreateTempSubdirectory("tunnel-prometheus-").FullName;
        var config = new StringBuilder("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n");
        foreach (var (job, targets) in jobs)
        {
            config.Append("  - job_name: '").Append(job).Append("'\n    static_configs:\n      - targets: [")
                .Append(string.Join(", ", targets.Select(t => "'" + t + "'"))).Append("]\n");
        }

        var configPath = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(configPath, config.ToString());

        var port = FreePort();
        Assert.True(File.Exists(ExecutablePath), $"prometheus is not installed at {ExecutablePath} (Debian: apt-get install prometheus); `bash test.sh` as root installs what the tests need.");
        var start = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var argument in (string[])[$"--config.file={configPath}", $"--storage.tsdb.path={Path.Combine(directory, "data")}",
            $"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Cannot start prometheus.");
        var server = new PrometheusServer(process, directory, new Uri($"http://127.0.0.1:{port}/"));
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            if (process.HasExited)
            {
                await server.DisposeAsync();
                Assert.Fail($"prometheus exited with {process.ExitCode}: {server.Output}");
            }

            try
            {
                using var ready = await server._http.GetAsync("-/ready");
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            if (DateTime.UtcNow > deadline)
            {
                await server.DisposeAsync();
                Assert.Fail($"prometheus was not ready within 15 s: {server.Output}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>An instant query through <c>/api/v1/query</c>: each series' labels and value.</summary>
    public async Task<IReadOnlyList<Series>> QueryAsync(string expression)
    {
        using var response = await _http.GetAsync("api/v1/query?query=" + Uri.EscapeDataString(expression));
        var body = await response.Content.ReadAsStringAsync();
        var json = JsonNode.Parse(body)!;
        if (json["status"]?.GetValue<string>() != "success")
        {
            throw new InvalidOperationException($"query {expression} failed: {body}");
        }

        var data = json["data"]!;
        var type = data["resultType"]!.GetValue<string>();
        if (type == "scalar")
        {
            return [new Series(new Dictionary<string, string>(), ParseValue(data["result"]!))];
        }

        return [.. data["result"]!.AsArray().Select(r => new Series(
            r!["metric"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>()),
            ParseValue(r["value"]!)))];
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _process.WaitForExitAsync(wait.Token);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
        {
            // Already gone, or stuck: nothing more to do from here.
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held by the dying process: the temp directory is cleaned up eventually.
        }
    }

    private static double ParseValue(JsonNode value) => value[1]!.GetValue<string>() switch
    {
        "NaN" => double.NaN,
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        var text => double.Parse(text, CultureInfo.InvariantCulture),
    };

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    /// <summary>One series of a query's answer.</summary>
    public sealed record Series(IReadOnlyDictionary<string, string> Labels, double Value)
    {
        public string Label(string name) => Labels.TryGetValue(name, out var value) ? value : "";

        public override string ToString() => "{" + string.Join(",", Labels.Select(l => $"{l.Key}=\"{l.Value}\"")) + "} " + Value.ToString(CultureInfo.InvariantCulture);
    }
}
