using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Tunnel.Bench;

/// <summary>One row of the side-by-side table: a figure per setup.</summary>
internal sealed class Row(string name, Func<double, string> format, bool lowerIsBetter = false)
{
    public string Name { get; } = name;

    public Func<double, string> Format { get; } = format;

    public bool LowerIsBetter { get; } = lowerIsBetter;

    public Dictionary<string, Figure> Figures { get; } = [];

    public double? Value(string setup) => Figures.TryGetValue(setup, out var figure) ? figure.Value : null;
}

/// <summary>
/// The CPU each setup's parts spent per unit of work (a request, or a MiB of downloads) in the runs of
/// one workload.
/// </summary>
internal sealed class CpuRow(string name)
{
    public string Name { get; } = name;

    public Dictionary<string, List<(CpuMeter.Spent Spent, double Units)>> Runs { get; } = [];

    public void Add(string setup, CpuMeter.Spent spent, double units)
    {
        if (units > 0)
        {
            (Runs.TryGetValue(setup, out var runs) ? runs : Runs[setup] = []).Add((spent, units));
        }
    }

    /// <summary>
    /// The run whose CPU per unit, all parts together, is the median, with each part divided by the
    /// units of work: one run's figures, so that the parts add up.
    /// </summary>
    public (double LoadGenerator, double Relay, double App, double All, double CoresBusy, long RelayMemory)? Median(string setup)
    {
        if (!Runs.TryGetValue(setup, out var runs) || runs.Count == 0)
        {
            return null;
        }

        var (spent, units) = runs.OrderBy(r => r.Spent.All / r.Units).ElementAt(runs.Count / 2);
        return (spent.LoadGenerator / units, spent.Relay / units, spent.App / units, spent.All / units, spent.CoresBusy, spent.RelayMemory);
    }
}

/// <summary>A target from the issue: a measured value and the bound it must meet.</summary>
internal sealed record TargetCheck(string Target, double? Measured, double Bound, bool AtMost, Func<double, string> Format)
{
    public string Verdict => Measured is not { } value ? "not measured" : (AtMost ? value <= Bound : value >= Bound) ? "met" : "NOT met";
}

/// <summary>Everything one run measured, for <see cref="Report.Render"/>.</summary>
/// <param name="Setups">The main table's columns (HTTP setups).</param>
/// <param name="Rows">The main table's rows.</param>
/// <param name="TcpSetups">The TCP table's columns.</param>
/// <param name="TcpRows">The TCP table's rows.</param>
/// <param name="CpuRows">Where the CPU goes, per workload.</param>
/// <param name="EdgeRows">The edge's own rows.</param>
/// <param name="Targets">The issue's targets against the measured figures.</param>
/// <param name="Unavailable">Setups that could not start.</param>
internal sealed record ReportData(IReadOnlyList<string> Setups, IReadOnlyList<Row> Rows, IReadOnlyList<string> TcpSetups, IReadOnlyList<Row> TcpRows,
    IReadOnlyList<CpuRow> CpuRows, IReadOnlyList<(string Name, string Value, string Detail)> EdgeRows, IReadOnlyList<TargetCheck> Targets,
    IReadOnlyList<UnavailableSetup> Unavailable);

/// <summary>Renders the table as Markdown, for the terminal and docs/benchmarks.md.</summary>
internal static class Report
{
    public const string Begin = "<!-- bench:begin (written by bench/run; edit outside these markers) -->";
    public const string End = "<!-- bench:end -->";

    /// <summary>The 1, 5 and 15 minute load averages when the run began: other work on the machine skews absolute figures.</summary>
    public static string LoadAtStart { get; } = File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    public static string Render(ReportData data, string method)
    {
        ArgumentNullException.ThrowIfNull(data);
        var (setups, rows, cpuRows, edgeRows, targets) = (data.Setups, data.Rows, data.CpuRows, data.EdgeRows, data.Targets);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, commit {Environment.GetEnvironmentVariable("BENCH_COMMIT") ?? "unknown"}.");
        text.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Machine()}.");
        text.AppendLine();
        text.AppendLine(method);
        text.AppendLine();

        RenderTable(text, setups, rows);
        foreach (var missing in data.Unavailable)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"{missing.Name}: not available ({missing.Reason}).");
        }

        // The cleartext setups side by side; TLS passthrough against Kestrel's own HTTPS only.
        string[] tls = [Setups.DirectHttps, Setups.TunnelTlsPassthrough];
        var cleartext = setups.Where(s => !tls.Contains(s)).ToList();
        RenderRatios(text, cleartext, rows, Setups.Tunnel, "Tunnel");
        RenderRatios(text, cleartext, rows, Setups.TunnelPassthrough, "HTTP passthrough");
        RenderRatios(text, tls, rows, Setups.TunnelTlsPassthrough, "TLS passthrough");

        if (data.TcpRows.Any(r => r.Figures.Count > 0))
        {
            text.AppendLine();
            text.AppendLine("TCP: HelloOrigin's plain TCP service (a Kestrel connection handler) reached directly, through a TCP route (the edge's route port, "
                + "the tunnel, then the app's UseTcpRelay to the service), through nginx's stream module and through ssh -R; the driver is the client.");
            text.AppendLine();
            RenderTable(text, data.TcpSetups, data.TcpRows);
            RenderRatios(text, data.TcpSetups, data.TcpRows, Setups.TunnelTcpRoute, "TCP route");
        }

        if (cpuRows.Any(r => r.Runs.Count > 0))
        {
            RenderCpu(text, [.. setups, .. data.TcpSetups.Where(s => !setups.Contains(s))], cpuRows);
        }

        text.AppendLine();
        text.AppendLine("| Edge | Figure | Detail |");
        text.AppendLine("|---|---:|---|");
        foreach (var (name, value, detail) in edgeRows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {value} | {detail} |");
        }

        text.AppendLine();
        text.AppendLine("| Target | Measured | Bound | Verdict |");
        text.AppendLine("|---|---:|---:|---|");
        foreach (var target in targets)
        {
            var measured = target.Measured is { } value ? target.Format(value) : "–";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {target.Target} | {measured} | {(target.AtMost ? "≤" : "≥")} {target.Format(target.Bound)} | {target.Verdict} |");
        }

        return text.ToString();
    }

    private static void RenderTable(StringBuilder text, IReadOnlyList<string> setups, IReadOnlyList<Row> rows)
    {
        text.Append("| Workload |");
        foreach (var setup in setups)
        {
            text.Append(CultureInfo.InvariantCulture, $" {setup} |");
        }

        text.AppendLine();
        text.AppendLine("|---|" + string.Concat(setups.Select(_ => "---:|")));
        foreach (var row in rows)
        {
            text.Append(CultureInfo.InvariantCulture, $"| {row.Name} |");
            foreach (var setup in setups)
            {
                text.Append(CultureInfo.InvariantCulture, $" {Cell(row, setup)} |");
            }

            text.AppendLine();
        }
    }

    /// <summary>One setup's figures divided by each other setup's, same run.</summary>
    private static void RenderRatios(StringBuilder text, IReadOnlyList<string> setups, IReadOnlyList<Row> rows, string subject, string label)
    {
        var peers = setups.Where(s => s != subject).ToList();
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"{label} ÷ each setup, same run (above 1: {label} is ahead; for latency rows, below 1 is ahead):");
        text.AppendLine();
        text.AppendLine("| Workload |" + string.Concat(peers.Select(p => $" ÷ {p} |")));
        text.AppendLine("|---|" + string.Concat(peers.Select(_ => "---:|")));
        foreach (var row in rows.Where(r => r.Figures.ContainsKey(subject)))
        {
            text.Append(CultureInfo.InvariantCulture, $"| {row.Name} |");
            foreach (var peer in peers)
            {
                text.Append(Ratio(row, subject, peer) is { } ratio ? string.Create(CultureInfo.InvariantCulture, $" {ratio:0.00}x |") : " – |");
            }

            text.AppendLine();
        }
    }

    private static void RenderCpu(StringBuilder text, IReadOnlyList<string> setups, IReadOnlyList<CpuRow> cpuRows)
    {
        text.AppendLine();
        text.AppendLine("Where the CPU goes: CPU time per request (per MiB for downloads and TCP transfers, per connection for new TLS connections) of the load generator "
            + "(wrk, h2load, or this driver for the TLS connections and TCP transfers), of the processes between it and the app "
            + "(the relay: tunnel-edge; nginx's processes; sshd's and the ssh client's; PageKite's two ends) and of the app, from the run with the median total; "
            + "the TLS setups' totals are divided by direct Kestrel HTTPS's; "
            + "cores busy is the machine's mean over that run (2.00: both cores all the time). With both cores busy, a setup's rate is about "
            + "2 s ÷ its total, so the tunnel's throughput ratios in the table above follow from its totals here. "
            + "Relay memory is the relay's processes' proportional set size (PSS: shared pages counted once) at the end of that run, in steady service.");
        text.AppendLine();
        text.AppendLine("| Workload | Setup | Load generator | Relay | App | Total | Total ÷ direct Kestrel's (HTTPS's for TLS) | Cores busy | Relay memory |");
        text.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in cpuRows)
        {
            var direct = row.Median(Setups.Direct);
            var directHttps = row.Median(Setups.DirectHttps);
            var first = true;
            foreach (var setup in setups)
            {
                if (row.Median(setup) is not { } cpu)
                {
                    continue;
                }

                var name = first ? row.Name : "";
                first = false;
                var isDirect = setup is Setups.Direct or Setups.DirectHttps;
                var relay = isDirect ? "–" : Micro(cpu.Relay);
                var reference = setup is Setups.DirectHttps or Setups.TunnelTlsPassthrough ? directHttps : direct;
                var ratio = reference is { All: > 0 } d ? string.Create(CultureInfo.InvariantCulture, $"{cpu.All / d.All:0.00}x") : "–";
                var memory = isDirect ? "–" : (cpu.RelayMemory / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";
                text.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {setup} | {Micro(cpu.LoadGenerator)} | {relay} | {Micro(cpu.App)} | {Micro(cpu.All)} | {ratio} | {cpu.CoresBusy:0.00} | {memory} |");
            }
        }
    }

    public static string Microseconds(double seconds) => Micro(seconds);

    private static string Micro(double seconds) => (seconds * 1e6).ToString(seconds < 1e-4 ? "0.0" : "#,0", CultureInfo.InvariantCulture) + " µs";

    public static double? Ratio(Row row, string setup, string peer) =>
        row.Value(setup) is { } mine && row.Value(peer) is { } theirs && theirs > 0 ? mine / theirs : null;

    /// <summary>Replaces the generated part of the document, keeping what was written around it.</summary>
    public static void WriteInto(string path, string generated)
    {
        var existing = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n\n" + Begin + "\n" + End + "\n";
        var start = existing.IndexOf(Begin, StringComparison.Ordinal);
        var end = existing.IndexOf(End, StringComparison.Ordinal);
        if (start < 0 || end < start)
        {
            existing = existing.TrimEnd() + "\n\n" + Begin + "\n" + End + "\n";
            start = existing.IndexOf(Begin, StringComparison.Ordinal);
            end = existing.IndexOf(End, StringComparison.Ordinal);
        }

        File.WriteAllText(path, existing[..(start + Begin.Length)] + "\n\n" + generated.TrimEnd() + "\n\n" + existing[end..]);
    }

    public static string RequestRate(double value) => value.ToString("#,0", CultureInfo.InvariantCulture) + " req/s";

    public static string ByteRate(double value) => value >= 1e9
        ? (value / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " GB/s"
        : (value / 1e6).ToString("0", CultureInfo.InvariantCulture) + " MB/s";

    public static string ConnectionRate(double value) => value.ToString("#,0", CultureInfo.InvariantCulture) + " conn/s";

    public static string Milliseconds(double seconds) => (seconds * 1000).ToString(seconds < 0.01 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + " ms";

    public static string Ratio(double value) => value.ToString("0.00", CultureInfo.InvariantCulture) + "x";

    private static string Cell(Row row, string setup)
    {
        if (!row.Figures.TryGetValue(setup, out var figure))
        {
            return "–";
        }

        var value = figure.Value is { } v ? row.Format(v) : "n/a";
        return figure.Note is null ? value : $"{value} ({figure.Note})";
    }

    private static string Machine()
    {
        string Read(string file, string key)
        {
            try
            {
                return File.ReadLines(file).FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
            }
            catch (IOException)
            {
                return "?";
            }
        }

        var memory = Read("/proc/meminfo", "MemTotal").Split(' ')[0];
        var gib = long.TryParse(memory, CultureInfo.InvariantCulture, out var kib) ? (kib / 1024.0 / 1024).ToString("0.0", CultureInfo.InvariantCulture) : "?";
        return $"{Environment.ProcessorCount} cores ({Read("/proc/cpuinfo", "model name")}), {gib} GiB RAM, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}, load average at start {LoadAtStart}";
    }
}
