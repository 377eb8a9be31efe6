using System.Globalization;
using Tunnel.Bench;

// bench/run's driver: starts every setup on loopback, runs each workload against each, back to back,
// and prints one table (also written into docs/benchmarks.md). See bench/README.md.
if (args is [TlsFloor.ServerFlag, var floorCertificate, var floorKey, var floorRelease])
{
    return await TlsFloor.ServeAsync(floorCertificate, floorKey, floorRelease == "release");
}

if (args is [SocketFloor.ServerFlag])
{
    return await SocketFloor.ServeAsync();
}

var options = BenchOptions.Parse(args);
_ = Report.LoadAtStart;
var work = Directory.CreateTempSubdirectory("tunnel-bench-").FullName;
var setupNames = new List<string> { Setups.Direct, Setups.Tunnel, Setups.TunnelPassthrough, Setups.Nginx, Setups.NginxStream, Setups.Ssh, Setups.PageKite, Setups.DirectHttps, Setups.TunnelTlsPassthrough };
var tcpSetupNames = new List<string> { Setups.Direct, Setups.TunnelTcpRoute, Setups.NginxStream, Setups.Ssh };
var h1 = new Row("Small GET, HTTP/1.1 (wrk, 32 connections)", Report.RequestRate);
var h2 = new Row("Small GET, HTTP/2 (h2load, 8 connections x 32 streams)", Report.RequestRate);
var download = new Row("1 MiB downloads (wrk, 4 connections)", Report.ByteRate);
var upload = new Row("256 MiB upload (curl)", Report.ByteRate);
var p50 = new Row($"Latency p50 at {options.LatencyRate} req/s (h2load --h1, 4 connections)", Report.Milliseconds, lowerIsBetter: true);
var p99 = new Row($"Latency p99 at {options.LatencyRate} req/s", Report.Milliseconds, lowerIsBetter: true);
const int TlsParallel = 16;
var tlsConnections = new Row($"New TLS connections per second (driver, {TlsParallel} at a time, full TLS 1.3 handshake and one GET each)", Report.ConnectionRate);
var rows = new List<Row> { h1, h2, download, upload, p50, p99, tlsConnections };
var tcpDownload = new Row("256 MiB TCP transfer, app to visitor (one connection)", Report.ByteRate);
var tcpUpload = new Row("256 MiB TCP transfer, visitor to app (one connection)", Report.ByteRate);
var tcpRows = new List<Row> { tcpDownload, tcpUpload };
var h1Cpu = new CpuRow("Small GET, HTTP/1.1");
var h2Cpu = new CpuRow("Small GET, HTTP/2");
var downloadCpu = new CpuRow("1 MiB downloads (per MiB)");
var tlsCpu = new CpuRow("New TLS connections (per connection)");
var tcpCpu = new CpuRow("256 MiB TCP transfer, app to visitor (per MiB)");
var cpuRows = new List<CpuRow> { h1Cpu, h2Cpu, downloadCpu, tlsCpu, tcpCpu };
var edgeRows = new List<(string, string, string)>();
List<UnavailableSetup> unavailable = [];
double? memoryPerTunnel = null;
double? httpPassthroughMemory = null;
double? tlsPassthroughMemory = null;
double? worstRestore = null;
var duration = TimeSpan.FromSeconds(options.Seconds);

try
{
    if (!options.EdgeOnly)
    {
        await using var processes = new BenchProcesses();
        var setups = new Setups(processes, work);
        Log("starting the app and every setup");
        await setups.StartAsync();
        unavailable = setups.Unavailable;
        var available = setups.Available.OrderBy(s => setupNames.IndexOf(s.Name)).ToList();
        if (options.Serve)
        {
            // For profiling: every setup stays up until the driver is stopped (Ctrl+C or SIGTERM).
            foreach (var setup in available)
            {
                Console.WriteLine($"{setup.Name}: {setup.Http1Url("/")} HTTP/2 {(setup.Http2Port is null ? "none" : setup.Http2Url("/"))} Host {setup.Host ?? "(any)"}");
            }

            foreach (var tcp in setups.Tcp)
            {
                Console.WriteLine($"{tcp.Name}, TCP service (ByteService): 127.0.0.1:{tcp.Port}");
            }

            var stop = new TaskCompletionSource();
            using var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
            using var terminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
            await stop.Task;

            void Stop(System.Runtime.InteropServices.PosixSignalContext context)
            {
                context.Cancel = true;
                stop.TrySetResult();
            }
            return 0;
        }

        // Every setup is measured in its steady state. The .NET processes (the app, the edge) need
        // tens of seconds of load before tiered compilation has optimised their hot paths: a 2 s
        // warm-up left the tunnel at a third of its steady rate in the first measured run. So each
        // setup is loaded in 3 s rounds until its rate stops rising (within 5 %), at most 10 rounds.
        Log("warming up (until each setup's rate is steady)");
        foreach (var setup in available)
        {
            await WarmUpAsync(setup, "HTTP/1.1", s => Workloads.SmallGetHttp1Async(s, TimeSpan.FromSeconds(3)));
            await WarmUpAsync(setup, "HTTP/2", s => Workloads.SmallGetHttp2Async(s, TimeSpan.FromSeconds(3)));
            await Workloads.DownloadAsync(setup, TimeSpan.FromSeconds(2));
        }

        // Each workload runs against every setup in turn, repeated; the median of the repeats is kept,
        // so a burst of other work on the machine skews one sample of each, not one setup.
        // Each run's requests (or MiB) are its rate times its length: wrk and h2load run for exactly that long.
        await MeasureAsync(h1, available, options.Repeats, s => Workloads.SmallGetHttp1Async(s, duration), (h1Cpu, setups.AppPid, rate => rate * duration.TotalSeconds));
        await MeasureAsync(h2, available, options.Repeats, s => Workloads.SmallGetHttp2Async(s, duration), (h2Cpu, setups.AppPid, rate => rate * duration.TotalSeconds));
        await MeasureAsync(download, available, options.Repeats, s => Workloads.DownloadAsync(s, duration), (downloadCpu, setups.AppPid, rate => rate * duration.TotalSeconds / Workloads.Mib));

        // Full TLS handshakes, against the two TLS setups only; the client is this driver, whose CPU
        // time is the load generator's in the CPU table.
        var tlsSetups = available.Where(s => s.Https).ToList();
        foreach (var setup in tlsSetups)
        {
            await ConnectionWorkloads.NewTlsConnectionsAsync(setup, TimeSpan.FromSeconds(2), TlsParallel);
        }

        await MeasureAsync(tlsConnections, tlsSetups, options.Repeats, s => ConnectionWorkloads.NewTlsConnectionsAsync(s, duration, TlsParallel),
            (tlsCpu, setups.AppPid, rate => rate * duration.TotalSeconds), driverIsLoadGenerator: true);

        // TCP: one connection each way to the app's plain TCP service, after a 32 MiB warm-up transfer.
        const long TcpLength = 256L * Workloads.Mib;
        var tcpSetups = setups.Tcp.OrderBy(s => tcpSetupNames.IndexOf(s.Name)).ToList();
        foreach (var setup in tcpSetups)
        {
            await ConnectionWorkloads.TcpTransferAsync(setup, download: true, 32L * Workloads.Mib);
        }

        await MeasureAsync(tcpDownload, tcpSetups, options.Repeats, s => ConnectionWorkloads.TcpTransferAsync(s, download: true, TcpLength),
            (tcpCpu, setups.AppPid, _ => TcpLength / (double)Workloads.Mib), driverIsLoadGenerator: true);
        await MeasureAsync(tcpUpload, tcpSetups, options.Repeats, s => ConnectionWorkloads.TcpTransferAsync(s, download: false, TcpLength));

        var uploadFile = Path.Combine(work, "upload.bin");
        const long UploadLength = 256L * Workloads.Mib;
        await using (var file = File.Create(uploadFile))
        {
            var chunk = new byte[Workloads.Mib];
            for (var i = 0; i < UploadLength / Workloads.Mib; i++)
            {
                Random.Shared.NextBytes(chunk);
                await file.WriteAsync(chunk);
            }
        }

        await MeasureAsync(upload, available, options.Repeats, s => Workloads.UploadAsync(s, uploadFile, UploadLength));
        File.Delete(uploadFile);

        // Repeated and interleaved like the load rows, the median of each percentile kept: a p99 rests on
        // the slowest 1 % of one run, and one stall of the machine during a setup's run moved a single
        // run's ratio by 2x either way.
        var latencies = available.ToDictionary(s => s.Name, _ => (Fifty: new List<Figure>(), NinetyNine: new List<Figure>()));
        for (var repeat = 0; repeat < options.Repeats; repeat++)
        {
            foreach (var setup in available)
            {
                Log($"latency: {setup.Name} ({repeat + 1}/{options.Repeats})");
                var (fifty, ninetyNine) = await Workloads.LatencyAsync(setup, options.LatencyRate, TimeSpan.FromSeconds(options.LatencySeconds), work);
                latencies[setup.Name].Fifty.Add(fifty);
                latencies[setup.Name].NinetyNine.Add(ninetyNine);
            }
        }

        foreach (var (name, (fifties, ninetyNines)) in latencies)
        {
            p50.Figures[name] = Median(fifties);
            p99.Figures[name] = Median(ninetyNines);
        }

        // PageKite fails in ways of its own (see bench/README.md): when any of its rows has no figure,
        // its logs are kept and their last errors shown, so the next run's reader can tell why.
        Row[] pageKiteRows = [h1, download, upload, p50];
        if (pageKiteRows.Any(r => r.Figures.TryGetValue(Setups.PageKite, out var f) && f.Value is null))
        {
            var kept = Path.Combine(Path.GetTempPath(), "tunnel-bench-pagekite-logs");
            Directory.CreateDirectory(kept);
            foreach (var log in new[] { "frontend.log", "backend.log" })
            {
                var path = Path.Combine(work, "pagekite", log);
                if (!File.Exists(path))
                {
                    continue;
                }

                File.Copy(path, Path.Combine(kept, log), overwrite: true);
                var errors = File.ReadLines(path).Where(l => l.Contains("err=", StringComparison.Ordinal) || l.StartsWith("Error", StringComparison.Ordinal)).TakeLast(3);
                foreach (var error in errors)
                {
                    Log($"PageKite {log}: {(error.Length > 300 ? error[..300] + "..." : error)}");
                }
            }

            Log($"PageKite's logs are kept in {kept}");
        }
    }

    if (!options.SkipEdge)
    {
        await using var processes = new BenchProcesses();
        var pki = await Pki.CreateAsync(Path.Combine(work, "edge-pki"));
        var edge = new EdgeBenchmarks(processes, pki);

        Log($"edge memory: {options.MemoryOrigins} x {options.MemoryConnectionsPerOrigin} tunnel connections");
        try
        {
            var (perConnection, detail) = await edge.MemoryPerTunnelAsync(options.MemoryOrigins, options.MemoryConnectionsPerOrigin);
            memoryPerTunnel = perConnection.Value;
            edgeRows.Add(("Memory per idle tunnel connection", perConnection.Value is { } bytes ? Kib(bytes) : "n/a", detail));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException or TaskCanceledException)
        {
            edgeRows.Add(("Memory per idle tunnel connection", "n/a", ex.Message.Split('\n')[0]));
        }

        // Two floors: what SslStream costs as it comes, and with the record buffers released between
        // records as the edge does (TlsBufferRelease); the tunnel row compares with the second.
        foreach (var (label, release) in new[] { ("Baseline: memory per idle TLS connection alone", false), ("Baseline: the same, record buffers released as the edge does", true) })
        {
            Log(label.ToLowerInvariant());
            try
            {
                var (perConnection, detail) = await TlsFloor.MeasureAsync(processes, pki, options.MemoryOrigins * options.MemoryConnectionsPerOrigin, release, EdgeBenchmarks.SampleResidentAsync);
                edgeRows.Add((label, Kib(perConnection), detail));
            }
            catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or IOException or System.Net.Sockets.SocketException or System.Security.Authentication.AuthenticationException)
            {
                edgeRows.Add((label, "n/a", ex.Message.Split('\n')[0]));
            }
        }

        Log($"edge memory: {options.PassthroughConnections} idle passthrough visitor connections of each mode");
        double? socketFloor = null;
        try
        {
            var (perSocket, detail) = await SocketFloor.MeasureAsync(processes, options.PassthroughConnections);
            socketFloor = perSocket;
            edgeRows.Add(("Baseline: memory per idle accepted TCP connection alone", Kib(perSocket), detail));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or IOException or System.Net.Sockets.SocketException)
        {
            edgeRows.Add(("Baseline: memory per idle accepted TCP connection alone", "n/a", ex.Message.Split('\n')[0]));
        }

        try
        {
            var ((http, httpDetail), (tls, tlsDetail)) = await new PassthroughMemory(processes, pki).MeasureAsync(options.PassthroughConnections);
            var floor = socketFloor ?? 0;
            httpPassthroughMemory = socketFloor is null ? null : http - floor;
            tlsPassthroughMemory = socketFloor is null ? null : tls - floor;
            edgeRows.Add(("Memory per idle HTTP passthrough visitor connection", Kib(http), $"{Kib(http - floor)} beyond the baseline socket's; {httpDetail}"));
            edgeRows.Add(("Memory per idle TLS passthrough visitor connection", Kib(tls), $"{Kib(tls - floor)} beyond the baseline socket's; {tlsDetail}"));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or IOException or HttpRequestException or TaskCanceledException
            or System.Net.Sockets.SocketException or System.Security.Authentication.AuthenticationException)
        {
            edgeRows.Add(("Memory per idle passthrough visitor connection", "n/a", ex.Message.Split('\n')[0]));
        }

        Log("registrations per second");
        try
        {
            var registrations = await edge.RegistrationsPerSecondAsync(options.Registrations, 32);
            edgeRows.Add(("Registrations per second", registrations.Value is { } rate ? rate.ToString("#,0", CultureInfo.InvariantCulture) + "/s" : "n/a",
                $"{options.Registrations} dials (TCP, TLS 1.3 with client certificate, registration) by EdgeDialer, 32 at a time{(registrations.Note is null ? "" : "; " + registrations.Note)}"));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException or TaskCanceledException)
        {
            edgeRows.Add(("Registrations per second", "n/a", ex.Message.Split('\n')[0]));
        }

        Log("restore after an edge kill");
        try
        {
            var restores = await edge.RestoreSecondsAsync(options.RestoreRounds);
            restores.Sort();
            worstRestore = restores[^1];
            edgeRows.Add(("Restore all connections after an edge kill", Report.Milliseconds(restores[restores.Count / 2]) + " median",
                $"4 connections over 2 edges, SIGKILL to one, until the other holds 4; rounds: {string.Join(", ", restores.Select(Report.Milliseconds))}"));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException or TaskCanceledException)
        {
            edgeRows.Add(("Restore all connections after an edge kill", "n/a", ex.Message.Split('\n')[0]));
        }
    }
}
finally
{
    try
    {
        Directory.Delete(work, recursive: true);
    }
    catch (IOException)
    {
    }
}

double? TunnelOver(Row row, string peer) => Report.Ratio(row, Setups.Tunnel, peer);
double? PassthroughOver(Row row, string peer) => Report.Ratio(row, Setups.TunnelPassthrough, peer);
double? TlsOver(Row row) => Report.Ratio(row, Setups.TunnelTlsPassthrough, Setups.DirectHttps);
double? EdgeCpu(CpuRow row, string setup) => row.Median(setup)?.Relay;
var targets = new List<TargetCheck>
{
    new("Small GET HTTP/1.1: tunnel ÷ direct Kestrel", TunnelOver(h1, Setups.Direct), 0.5, false, Report.Ratio),
    new("Small GET HTTP/1.1: tunnel ÷ nginx", TunnelOver(h1, Setups.Nginx), 1.2, false, Report.Ratio),
    new("Small GET HTTP/1.1: tunnel ÷ ssh -R", TunnelOver(h1, Setups.Ssh), 1.5, false, Report.Ratio),
    new("Small GET HTTP/2: tunnel ÷ direct Kestrel", TunnelOver(h2, Setups.Direct), 0.4, false, Report.Ratio),
    new("Small GET HTTP/2: tunnel ÷ nginx", TunnelOver(h2, Setups.Nginx), 2.0, false, Report.Ratio),
    new("Small GET HTTP/2: tunnel ÷ ssh -R", TunnelOver(h2, Setups.Ssh), 0.7, false, Report.Ratio),
    new("1 MiB downloads: tunnel ÷ direct Kestrel", TunnelOver(download, Setups.Direct), 0.5, false, Report.Ratio),
    new("1 MiB downloads: tunnel ÷ ssh -R", TunnelOver(download, Setups.Ssh), 5.0, false, Report.Ratio),
    new("Latency p99: tunnel ÷ direct Kestrel", TunnelOver(p99, Setups.Direct), 2.0, true, Report.Ratio),
    new("Small GET HTTP/2, HTTP passthrough ÷ direct Kestrel", PassthroughOver(h2, Setups.Direct), 0.5, false, Report.Ratio),
    new("Small GET HTTP/2, HTTP passthrough ÷ ssh -R", PassthroughOver(h2, Setups.Ssh), 0.8, false, Report.Ratio),
    new("Small GET HTTP/1.1, HTTP passthrough ÷ direct Kestrel", PassthroughOver(h1, Setups.Direct), 0.6, false, Report.Ratio),
    new("Small GET HTTP/1.1, HTTP passthrough ÷ ssh -R", PassthroughOver(h1, Setups.Ssh), 1.5, false, Report.Ratio),
    new("1 MiB downloads, HTTP passthrough ÷ direct Kestrel", PassthroughOver(download, Setups.Direct), 0.5, false, Report.Ratio),
    new("1 MiB downloads, HTTP passthrough ÷ nginx stream", PassthroughOver(download, Setups.NginxStream), 1.0, false, Report.Ratio),
    new("Small GET HTTP/2, TLS passthrough ÷ direct Kestrel HTTPS", TlsOver(h2), 0.5, false, Report.Ratio),
    new("Small GET HTTP/1.1, TLS passthrough ÷ direct Kestrel HTTPS", TlsOver(h1), 0.6, false, Report.Ratio),
    new("1 MiB downloads, TLS passthrough ÷ direct Kestrel HTTPS", TlsOver(download), 0.5, false, Report.Ratio),
    new("Edge CPU per small GET, HTTP passthrough, HTTP/1.1", EdgeCpu(h1Cpu, Setups.TunnelPassthrough), 5e-6, true, Report.Microseconds),
    new("Edge CPU per small GET, HTTP passthrough, HTTP/2", EdgeCpu(h2Cpu, Setups.TunnelPassthrough), 5e-6, true, Report.Microseconds),
    new("Edge CPU per small GET, TLS passthrough, HTTP/1.1", EdgeCpu(h1Cpu, Setups.TunnelTlsPassthrough), 5e-6, true, Report.Microseconds),
    new("Edge CPU per small GET, TLS passthrough, HTTP/2", EdgeCpu(h2Cpu, Setups.TunnelTlsPassthrough), 5e-6, true, Report.Microseconds),
    new("Edge memory per idle HTTP passthrough connection, beyond a bare socket's", httpPassthroughMemory, 16 * 1024, true, Kib),
    new("Edge memory per idle TLS passthrough connection, beyond a bare socket's", tlsPassthroughMemory, 16 * 1024, true, Kib),
    new("Edge memory per idle tunnel connection", memoryPerTunnel, 64 * 1024, true, Kib),
    new("Restore after an edge kill (worst round)", worstRestore, 1.0, true, Report.Milliseconds),
};

var method = $"Throughput: median of {options.Repeats} runs of {options.Seconds} s per setup, the setups taking turns within each workload. "
    + "The same HelloOrigin (Release) serves every setup; the tunnel is tunnel-edge plus the UseTunnelTransport plugin with 4 connections. All on loopback.";
var rendered = Report.Render(new(setupNames, rows, tcpSetupNames, tcpRows, cpuRows, edgeRows, targets, unavailable), method);
Console.WriteLine();
Console.WriteLine(rendered);
if (options.Output is { } output)
{
    Report.WriteInto(output, rendered);
    Log($"written into {output}");
}

return 0;

static async Task WarmUpAsync(Setup setup, string what, Func<Setup, Task<Figure>> load)
{
    const int MinRounds = 4;
    const int MaxRounds = 10;
    double? previous = null;
    for (var round = 1; round <= MaxRounds; round++)
    {
        var rate = (await load(setup)).Value;
        if (rate is null)
        {
            // Not served this way (PageKite and HTTP/2): nothing to warm.
            return;
        }

        // At least 4 rounds: while the JIT compiles in the background a round can dip below the one
        // before it without the setup being warm.
        if (round >= MinRounds && previous is { } last && rate < last * 1.05)
        {
            Log($"{setup.Name} {what}: steady after {round} rounds ({rate:0} req/s)");
            return;
        }

        previous = rate;
    }

    Log($"{setup.Name} {what}: still rising after {MaxRounds} rounds ({previous:0} req/s)");
}

// With cpu given, each run's CPU time is read around it (CpuMeter), and divided by the work it did.
async Task MeasureAsync<T>(Row row, List<T> available, int repeats, Func<T, Task<Figure>> measure, (CpuRow Row, int AppPid, Func<double, double> Units)? cpu = null, bool driverIsLoadGenerator = false)
    where T : IRelaySetup
{
    var samples = available.ToDictionary(s => s.Name, _ => new List<Figure>());
    for (var repeat = 0; repeat < repeats; repeat++)
    {
        foreach (var setup in available)
        {
            // A setup that failed once, or got only a partial figure (PageKite's upload), is not tried
            // again: its row says why.
            if (samples[setup.Name].Any(f => f.Value is null || f.Partial))
            {
                continue;
            }

            Log($"{row.Name}: {setup.Name} ({repeat + 1}/{repeats})");
            var before = cpu is { } meter ? CpuMeter.Read(setup.RelayPids, meter.AppPid, driverIsLoadGenerator) : default;
            var figure = await measure(setup);
            samples[setup.Name].Add(figure);
            if (cpu is { } used && figure.Value is { } rate && !figure.Partial)
            {
                used.Row.Add(setup.Name, CpuMeter.Between(before, CpuMeter.Read(setup.RelayPids, used.AppPid, driverIsLoadGenerator)), used.Units(rate));
            }
        }
    }

    foreach (var (name, figures) in samples)
    {
        row.Figures[name] = Median(figures);
    }
}

// The median of the measured figures (the first failure's reason when none was measured), with the
// first note any of them carried.
static Figure Median(List<Figure> figures)
{
    var measured = figures.Where(f => f.Value is not null).OrderBy(f => f.Value).ToList();
    return measured.Count == 0 ? figures[0] : measured[measured.Count / 2] with
    {
        Note = figures.FirstOrDefault(f => f.Note is not null)?.Note,
    };
}

static string Kib(double bytes) => (bytes / 1024).ToString("0.0", CultureInfo.InvariantCulture) + " KiB";

static void Log(string message) => Console.Error.WriteLine($"[bench {DateTime.UtcNow:HH:mm:ss}] {message}");

/// <summary>Command-line options of the driver.</summary>
internal sealed record BenchOptions
{
    public int Seconds { get; init; } = 5;

    public int Repeats { get; init; } = 3;

    public int LatencyRate { get; init; } = 500;

    public int LatencySeconds { get; init; } = 10;

    public int MemoryOrigins { get; init; } = 20;

    public int MemoryConnectionsPerOrigin { get; init; } = 50;

    public int Registrations { get; init; } = 500;

    /// <summary>Idle passthrough connections of each mode; both batches together stay under 4 x 100, Kestrel's default streams on the origin's 4 tunnel connections.</summary>
    public int PassthroughConnections { get; init; } = 150;

    public int RestoreRounds { get; init; } = 3;

    public bool SkipEdge { get; init; }

    public bool Serve { get; init; }

    public bool EdgeOnly { get; init; }

    public string? Output { get; init; }

    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            options = args[i] switch
            {
                "--out" => options with { Output = Next() },
                "--seconds" => options with { Seconds = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--repeats" => options with { Repeats = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--skip-edge" => options with { SkipEdge = true },
                "--serve" => options with { Serve = true },
                "--edge-only" => options with { EdgeOnly = true },
                "--quick" => options with { Seconds = 2, Repeats = 1, LatencySeconds = 4, MemoryOrigins = 4, Registrations = 100, RestoreRounds = 1 },
                _ => throw new ArgumentException($"Unknown option {args[i]}; see bench/README.md."),
            };
        }

        return options;
    }
}
