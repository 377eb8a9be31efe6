using System.Globalization;
using System.Text.RegularExpressions;

namespace Tunnel.Bench;

/// <summary>A measured figure (null when none could be measured, with the reason in the note).</summary>
/// <param name="Partial">Measured on part of the work only (an upload cut at its time limit): not repeated.</param>
internal sealed record Figure(double? Value, string? Note = null, bool Partial = false)
{
    public static Figure Missing(string why) => new(null, why);
}

/// <summary>The load workloads, each run by a real client (wrk, h2load, curl) against one setup.</summary>
internal static partial class Workloads
{
    public const int Mib = 1024 * 1024;

    /// <summary>Small GET over HTTP/1.1: wrk, 2 threads, 32 connections. Successful requests per second.</summary>
    public static async Task<Figure> SmallGetHttp1Async(Setup setup, TimeSpan duration)
    {
        var output = await WrkAsync(setup, "/", 32, duration).ConfigureAwait(false);
        return ParseWrk(output, out var rate) is { } problem ? Figure.Missing(problem) : new Figure(rate);
    }

    /// <summary>Small GET over HTTP/2 with prior knowledge: h2load, 8 connections x 32 streams.</summary>
    public static async Task<Figure> SmallGetHttp2Async(Setup setup, TimeSpan duration)
    {
        if (setup.Http2Port is null)
        {
            return Figure.Missing(setup.NoHttp2Reason ?? "no HTTP/2");
        }

        string[] arguments = ["-t", "2", "-c", "8", "-m", "32", "-D", Seconds(duration), .. Authority(setup), setup.Http2Url("/")];
        var result = await Tool.RunAsync("h2load", arguments, duration + TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        var finished = H2loadFinished().Match(result.Output);
        var status = H2loadStatus().Match(result.Output);
        if (!finished.Success || !status.Success)
        {
            return Figure.Missing("h2load failed: " + FirstLine(result.Error + result.Output));
        }

        var seconds = double.Parse(finished.Groups[1].Value, CultureInfo.InvariantCulture);
        var ok = long.Parse(status.Groups[1].Value, CultureInfo.InvariantCulture);
        var total = H2loadRequests().Match(result.Output) is { Success: true } requests ? long.Parse(requests.Groups[1].Value, CultureInfo.InvariantCulture) : ok;
        return ok == 0 ? Figure.Missing("no 2xx responses") : new Figure(ok / seconds, total > ok ? $"{total - ok} failed" : null);
    }

    /// <summary>1 MiB downloads: wrk, 4 connections. Bytes per second of 2xx bodies.</summary>
    public static async Task<Figure> DownloadAsync(Setup setup, TimeSpan duration)
    {
        var output = await WrkAsync(setup, "/download?bytes=" + Mib.ToString(CultureInfo.InvariantCulture), 4, duration).ConfigureAwait(false);
        return ParseWrk(output, out var rate) is { } problem ? Figure.Missing(problem) : new Figure(rate * Mib);
    }

    /// <summary>
    /// One 256 MiB upload with curl (streamed from a file); bytes per second. The app hashes what it
    /// receives. An upload still going after 60 s (PageKite's, at about 2 MB/s) is stopped there and
    /// its figure is what curl sent in that time, marked as partial so that it is not run again.
    /// </summary>
    public static async Task<Figure> UploadAsync(Setup setup, string file, long length)
    {
        var response = Path.Combine(Path.GetDirectoryName(file)!, "upload-response.json");
        string[] arguments = ["-sS", "-X", "POST", "-T", file, "-H", "Expect:", "-H", "Content-Type: application/octet-stream", "-o", response,
            "-w", "%{http_code} %{time_total} %{size_upload}", "--max-time", "60", "-k", .. Host(setup), setup.Http1Url("/upload")];
        var result = await Tool.RunAsync("curl", arguments, TimeSpan.FromSeconds(70)).ConfigureAwait(false);
        var parts = result.Output.Trim().Split(' ');
        const int TimedOut = 28;
        if (result.ExitCode == TimedOut && parts.Length == 3
            && double.TryParse(parts[1], CultureInfo.InvariantCulture, out var seconds) && seconds > 0
            && long.TryParse(parts[2], CultureInfo.InvariantCulture, out var sent) && sent > 0)
        {
            var sentMib = (sent / (double)Mib).ToString("0", CultureInfo.InvariantCulture);
            return new Figure(sent / seconds, $"partial: {sentMib} of {length / Mib} MiB sent in {seconds:0} s", Partial: true);
        }

        if (result.ExitCode != 0 || parts.Length != 3 || parts[0] != "200")
        {
            return Figure.Missing($"upload failed ({result.Output.Trim()} {FirstLine(result.Error)})");
        }

        var body = await File.ReadAllTextAsync(response).ConfigureAwait(false);
        if (!body.Contains($"\"bytes\":{length.ToString(CultureInfo.InvariantCulture)}", StringComparison.Ordinal))
        {
            return Figure.Missing("the app received another length: " + body);
        }

        return new Figure(length / double.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Latency at a fixed rate: h2load over HTTP/1.1 (so every setup, PageKite included, takes part),
    /// 4 connections at <paramref name="rate"/> requests per second in all; p50 and p99 in seconds.
    /// </summary>
    public static async Task<(Figure P50, Figure P99)> LatencyAsync(Setup setup, int rate, TimeSpan duration, string workDirectory)
    {
        const int Connections = 4;
        var log = Path.Combine(workDirectory, "latency.log");
        File.Delete(log);
        string[] arguments = ["--h1", "-t", "1", "-c", Connections.ToString(CultureInfo.InvariantCulture), "--rps", (rate / Connections).ToString(CultureInfo.InvariantCulture),
            "-D", Seconds(duration), "--warm-up-time", "1", "--log-file", log, .. Authority(setup), setup.Http1Url("/")];
        var result = await Tool.RunAsync("h2load", arguments, duration + TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        if (!File.Exists(log))
        {
            var missing = Figure.Missing("h2load failed: " + FirstLine(result.Error + result.Output));
            return (missing, missing);
        }

        var samples = new List<double>();
        var failed = 0;
        foreach (var line in await File.ReadAllLinesAsync(log).ConfigureAwait(false))
        {
            var columns = line.Split('\t');
            if (columns.Length < 3)
            {
                continue;
            }

            if (columns[1] != "200")
            {
                failed++;
                continue;
            }

            samples.Add(double.Parse(columns[2], CultureInfo.InvariantCulture) / 1e6);
        }

        if (samples.Count == 0)
        {
            var missing = Figure.Missing(failed > 0 ? $"no answer but {failed} failures" : "no answers");
            return (missing, missing);
        }

        // A setup that cannot keep the rate (PageKite answers a request in about 90 ms per connection)
        // is measured at the rate it kept, and says so: its figure is not one at the rate asked.
        var expected = (int)(rate * duration.TotalSeconds);
        var notes = new List<string>();
        if (samples.Count < expected * 9 / 10)
        {
            notes.Add($"could not keep the rate: {samples.Count} of {expected} answered");
        }

        if (failed > 0)
        {
            notes.Add($"{failed} failed");
        }

        samples.Sort();
        var note = notes.Count > 0 ? string.Join("; ", notes) : null;
        return (new Figure(Percentile(samples, 0.50), note), new Figure(Percentile(samples, 0.99), note));
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static async Task<string> WrkAsync(Setup setup, string path, int connections, TimeSpan duration)
    {
        string[] arguments = ["-t", "2", "-c", connections.ToString(CultureInfo.InvariantCulture), "-d", Seconds(duration), .. Host(setup), setup.Http1Url(path)];
        var result = await Tool.RunAsync("wrk", arguments, duration + TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return result.Output + result.Error;
    }

    /// <summary>Successful requests per second from wrk's output, or what went wrong.</summary>
    private static string? ParseWrk(string output, out double rate)
    {
        rate = 0;
        var summary = WrkSummary().Match(output);
        if (!summary.Success)
        {
            return "wrk failed: " + FirstLine(output);
        }

        var requests = long.Parse(summary.Groups[1].Value, CultureInfo.InvariantCulture);
        var seconds = double.Parse(summary.Groups[2].Value, CultureInfo.InvariantCulture) * summary.Groups[3].Value switch { "ms" => 1e-3, "m" => 60, _ => 1 };
        var bad = WrkNon2xx().Match(output) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        var errors = WrkSocketErrors().Match(output);
        var timeouts = errors.Success ? long.Parse(errors.Groups[4].Value, CultureInfo.InvariantCulture) : 0;
        if (requests - bad <= 0)
        {
            return $"no successful responses: {requests} requests, {bad} non-2xx, socket errors {(errors.Success ? errors.Value["Socket errors: ".Length..] : "none")}";
        }

        rate = (requests - bad) / seconds;
        return bad + timeouts > requests / 100 ? $"{bad} non-2xx, {timeouts} timeouts" : null;
    }

    private static string[] Host(Setup setup) => setup.Host is null ? [] : ["-H", "Host: " + setup.Host];

    private static string[] Authority(Setup setup) => setup.Host is null ? [] : ["-H", ":authority: " + setup.Host];

    private static string Seconds(TimeSpan duration) => ((int)Math.Ceiling(duration.TotalSeconds)).ToString(CultureInfo.InvariantCulture) + "s";

    private static string FirstLine(string text) => text.Trim().Split('\n')[0];

    [GeneratedRegex(@"(\d+) requests in ([\d.]+)(ms|s|m),")]
    private static partial Regex WrkSummary();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    private static partial Regex WrkNon2xx();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex WrkSocketErrors();

    [GeneratedRegex(@"finished in ([\d.]+)s, [\d.]+ req/s")]
    private static partial Regex H2loadFinished();

    [GeneratedRegex(@"status codes: (\d+) 2xx")]
    private static partial Regex H2loadStatus();

    [GeneratedRegex(@"requests: (\d+) total")]
    private static partial Regex H2loadRequests();
}
