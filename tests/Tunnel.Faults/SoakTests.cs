using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Tunnel.Faults.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.Faults;

/// <summary>
/// Ten minutes of mixed traffic (GET, POST, event streams, WebSockets) while a tunnel connection is
/// reset every few seconds: no idempotent request fails, and neither the edge nor the origin grows.
/// </summary>
[Trait("Suite", "Soak")]
public class SoakTests(ITestOutputHelper output)
{
    private const string Host = "soak.test";

    // How long the soak runs (TUNNEL_SOAK_MINUTES, default 10); the baseline is taken at a fifth of it
    // (minute 2 of 10), once the runtime's pools and the JIT have settled.
    private static readonly TimeSpan Duration = TimeSpan.FromMinutes(double.Parse(Environment.GetEnvironmentVariable("TUNNEL_SOAK_MINUTES") ?? "10", CultureInfo.InvariantCulture));

    // "No growth" with the noise of a live process: a socket or two in TIME_WAIT hand-over, a thread-pool
    // thread parked or not.
    private const int HandleSlack = 12;
    private const int ThreadSlack = 6;
    private const double WorkingSetGrowthLimit = 0.10;

    // Steady traffic, not a benchmark: a few hundred requests a second leave the machine's other work room.
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(5);

    [SoakFact]
    public async Task Mixed_traffic_with_tunnel_resets_every_few_seconds_fails_no_idempotent_request_and_leaks_nothing()
    {
        using var pki = new TestPki();
        await using var edge = await EdgeHost.StartAsync(pki, "soak-edge");
        await using var proxy = FaultProxy.Start(edge.TunnelEndPoint);
        await using var origin = OriginProcess.Start(pki, Host, [proxy.EndPoint]);
        await Wait.UntilAsync(() => origin.CountLines(OriginProcess.Registered()) >= 4, TimeSpan.FromSeconds(60), "the origin registers 4 tunnel connections");

        var counters = new Counters();
        using var stop = new CancellationTokenSource(Duration);
        using var client = Visitors.Client(edge.VisitorEndPoint);
        var workers = new List<Task>();
        workers.AddRange(Enumerable.Range(0, 3).Select(w => Task.Run(() => GetLoopAsync(client, counters, stop.Token))));
        workers.AddRange(Enumerable.Range(0, 2).Select(w => Task.Run(() => PostLoopAsync(client, counters, w, stop.Token))));
        workers.Add(Task.Run(() => StreamLoopAsync(client, counters, stop.Token)));
        workers.Add(Task.Run(() => WebSocketLoopAsync(edge.VisitorEndPoint, counters, stop.Token)));

        // Resets a live tunnel connection every 2 to 5 seconds.
        var resets = 0;
        var killer = Task.Run(async () =>
        {
            var random = new Random(8);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(random.Next(2000, 5000)), stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                var live = proxy.Links.Where(l => !l.IsClosed).ToArray();
                if (live.Length > 0)
                {
                    live[random.Next(live.Length)].Reset();
                    resets++;
                }
            }
        });

        var samples = new List<(TimeSpan At, ProcessStats Edge, ProcessStats Origin)>();
        var clock = Stopwatch.StartNew();
        while (!stop.IsCancellationRequested)
        {
            samples.Add((clock.Elapsed, ProcessStats.Read(edge.Process.Id), ProcessStats.Read(origin.Id)));
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }

        samples.Add((clock.Elapsed, ProcessStats.Read(edge.Process.Id), ProcessStats.Read(origin.Id)));
        await Task.WhenAll(workers.Append(killer)).WaitAsync(TimeSpan.FromSeconds(60));

        var baselineAt = Duration / 5;
        var baseline = samples.First(s => s.At >= baselineAt);
        var last = samples[^1];
        var report = new StringBuilder();
        report.AppendLine(CultureInfo.InvariantCulture, $"soak {Duration.TotalMinutes:0.#} min, {resets} tunnel resets, {origin.CountLines(OriginProcess.Registered())} tunnel registrations");
        report.AppendLine(counters.ToString());
        report.AppendLine(CultureInfo.InvariantCulture, $"edge   at {baseline.At.TotalMinutes:0.0} min: {baseline.Edge}; at {last.At.TotalMinutes:0.0} min: {last.Edge}");
        report.AppendLine(CultureInfo.InvariantCulture, $"origin at {baseline.At.TotalMinutes:0.0} min: {baseline.Origin}; at {last.At.TotalMinutes:0.0} min: {last.Origin}");
        foreach (var sample in samples)
        {
            report.AppendLine(CultureInfo.InvariantCulture, $"  {sample.At.TotalMinutes,5:0.0} min  edge {sample.Edge}  origin {sample.Origin}");
        }

        output.WriteLine(report.ToString());
        FiguresFile.Append("soak", report.ToString());
        foreach (var failure in counters.Failures.Take(50))
        {
            output.WriteLine(failure);
        }

        Assert.True(resets >= Duration.TotalSeconds / 6, $"only {resets} resets");
        Assert.True(counters.GetOk > 0 && counters.PostOk > 0 && counters.StreamsOk > 0 && counters.WebSocketsOk > 0, counters.ToString());
        Assert.True(counters.GetFailed == 0, $"{counters.GetFailed} idempotent requests failed: {string.Join("\n", counters.Failures.Where(f => f.Contains(" GET ", StringComparison.Ordinal)).Take(20))}");
        foreach (var (name, first, end) in new[] { ("edge", baseline.Edge, last.Edge), ("origin", baseline.Origin, last.Origin) })
        {
            Assert.True(end.WorkingSet <= first.WorkingSet * (1 + WorkingSetGrowthLimit), $"{name} working set grew from {first} to {end}");
            Assert.True(end.Handles <= first.Handles + HandleSlack, $"{name} handles grew from {first} to {end}");
            Assert.True(end.Threads <= first.Threads + ThreadSlack, $"{name} threads grew from {first} to {end}");
        }
    }

    private static async Task GetLoopAsync(HttpClient client, Counters counters, CancellationToken stop)
    {
        var n = 0;
        while (!stop.IsCancellationRequested)
        {
            var path = n++ % 2 == 0 ? "/" : "/headers";
            try
            {
                using var response = await client.GetAsync($"http://{Host}{path}", CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                if (response.StatusCode == HttpStatusCode.OK && body.Length > 0)
                {
                    Interlocked.Increment(ref counters.GetOk);
                    await Task.Delay(Pace, CancellationToken.None);
                    continue;
                }

                counters.Fail(ref counters.GetFailed, $"GET {path} -> {(int)response.StatusCode} {Detail(body)}");
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                counters.Fail(ref counters.GetFailed, $"GET {path} -> {ex.GetType().Name}: {ex.Message}");
            }

            await Task.Delay(Pace, CancellationToken.None);
        }
    }

    private static async Task PostLoopAsync(HttpClient client, Counters counters, int worker, CancellationToken stop)
    {
        var n = 0;
        while (!stop.IsCancellationRequested)
        {
            var payload = $"worker {worker} post {n++} " + new string('p', n % 3000);
            try
            {
                using var response = await client.PostAsync($"http://{Host}/echo", new StringContent(payload, Encoding.UTF8), CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                if (response.StatusCode == HttpStatusCode.OK && body == payload)
                {
                    Interlocked.Increment(ref counters.PostOk);
                    await Task.Delay(Pace, CancellationToken.None);
                    continue;
                }

                // A POST cut by a reset may not be repeated (the origin may have acted on it): it must
                // fail with the edge's 502, never with a wrong body.
                Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"POST -> {(int)response.StatusCode}: {body[..Math.Min(200, body.Length)]}");
                counters.Fail(ref counters.PostFailed, $"POST -> {(int)response.StatusCode}");
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                counters.Fail(ref counters.PostFailed, $"POST -> {ex.GetType().Name}: {ex.Message}");
            }

            await Task.Delay(Pace, CancellationToken.None);
        }
    }

    private static async Task StreamLoopAsync(HttpClient client, Counters counters, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var response = await client.GetAsync($"http://{Host}/stream?count=20", HttpCompletionOption.ResponseHeadersRead, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                var events = body.Split('\n').Count(line => line.StartsWith("data: ", StringComparison.Ordinal));
                if (response.StatusCode == HttpStatusCode.OK && events == 20)
                {
                    Interlocked.Increment(ref counters.StreamsOk);
                }
                else
                {
                    counters.Fail(ref counters.StreamsCut, $"stream -> {(int)response.StatusCode}, {events} events");
                    await Task.Delay(Pace, CancellationToken.None);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                // An event stream is not repeatable once begun: a reset under it cuts it.
                counters.Fail(ref counters.StreamsCut, $"stream -> {ex.GetType().Name}: {ex.Message}");
                await Task.Delay(Pace, CancellationToken.None);
            }
        }
    }

    private static async Task WebSocketLoopAsync(IPEndPoint edge, Counters counters, CancellationToken stop)
    {
        using var invoker = new HttpMessageInvoker(Visitors.Handler(edge));
        var buffer = new byte[1024];
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var socket = new ClientWebSocket();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await socket.ConnectAsync(new Uri($"ws://{Host}/ws"), invoker, timeout.Token);
                for (var i = 0; i < 20; i++)
                {
                    var message = Encoding.UTF8.GetBytes($"message {i}");
                    await socket.SendAsync(message, WebSocketMessageType.Text, true, timeout.Token);
                    var received = await socket.ReceiveAsync(buffer, timeout.Token);
                    Assert.Equal($"message {i}", Encoding.UTF8.GetString(buffer, 0, received.Count));
                    await Task.Delay(50, CancellationToken.None);
                }

                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
                Interlocked.Increment(ref counters.WebSocketsOk);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or HttpRequestException)
            {
                counters.Fail(ref counters.WebSocketsCut, $"websocket -> {ex.GetType().Name}: {ex.Message}");
                await Task.Delay(Pace, CancellationToken.None);
            }
        }
    }

    /// <summary>The edge's error page says why in its paragraph; the rest is style.</summary>
    private static string Detail(string body)
    {
        var paragraph = System.Text.RegularExpressions.Regex.Match(body, "<p>(.*?)</p>");
        return paragraph.Success ? paragraph.Groups[1].Value : body[..Math.Min(200, body.Length)];
    }

    private sealed class Counters
    {
        public int GetOk;
        public int GetFailed;
        public int PostOk;
        public int PostFailed;
        public int StreamsOk;
        public int StreamsCut;
        public int WebSocketsOk;
        public int WebSocketsCut;
        private readonly List<string> _failures = [];

        public IReadOnlyList<string> Failures
        {
            get
            {
                lock (_failures)
                {
                    return _failures.ToArray();
                }
            }
        }

        public void Fail(ref int counter, string failure)
        {
            Interlocked.Increment(ref counter);
            lock (_failures)
            {
                _failures.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {failure}");
            }
        }

        public override string ToString() =>
            $"GET ok {GetOk} failed {GetFailed}; POST ok {PostOk} failed {PostFailed}; event streams ok {StreamsOk} cut {StreamsCut}; WebSockets ok {WebSocketsOk} cut {WebSocketsCut}";
    }
}
