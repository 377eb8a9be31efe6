using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Tunnel.Edge.Tunnels;
using Xunit.Abstractions;

namespace Tunnel.Faults;

/// <summary>
/// The tunnel across a bad network and through restarts: a slow link, packet loss, an edge restarted
/// under load, an origin restarted under load. Suite=Full: they take minutes, not seconds.
/// </summary>
[Trait("Suite", "Full")]
public partial class NetworkFaultTests(ITestOutputHelper output)
{
    private const string Host = TunnelHarness.Hostname;

    [FullFact]
    public async Task Over_a_100_ms_10_Mbit_link_tunnels_register_stay_up_and_carry_load_and_a_download_without_a_failure()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await using var link = LinkEmulator.Start(harness.Edge.TunnelEndPoint, TimeSpan.FromMilliseconds(100), 10_000_000);
        var clock = Stopwatch.StartNew();
        await harness.StartOriginAsync(configureTunnel: t => t.Edges = [$"127.0.0.1:{link.EndPoint.Port}"]);
        var registeredIn = clock.Elapsed;
        var tunnels = harness.Edge.Routes.Connections().ToArray();

        using var client = Visitors.Client(harness.Edge.VisitorEndPoint, TimeSpan.FromSeconds(60));
        clock.Restart();
        using (var first = await client.GetAsync($"http://{Host}/"))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, first.StatusCode);
        }

        var oneRequest = clock.Elapsed;

        await using var load = Load.Start(harness.VisitorPort, Host, workers: 4);
        clock.Restart();
        const long DownloadBytes = 4_000_000;
        var download = await client.GetByteArrayAsync($"http://{Host}/download?bytes={DownloadBytes}");
        var downloadTime = clock.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(10));
        await load.StopAsync();

        var mbits = DownloadBytes * 8 / downloadTime.TotalSeconds / 1e6;
        var figures = $"4 tunnels registered in {registeredIn.TotalMilliseconds:0} ms; one GET {oneRequest.TotalMilliseconds:0} ms; " +
            $"{DownloadBytes / 1e6:0} MB download in {downloadTime.TotalSeconds:0.0} s ({mbits:0.0} Mbit/s) beside {load.Succeeded} GET/POST requests, {load.Failures.Count} failed; " +
            $"tunnels replaced meanwhile: {tunnels.Count(t => !harness.Edge.Routes.Connections().Contains(t))}";
        output.WriteLine(figures);
        FiguresFile.Append("slow link (100 ms RTT, 10 Mbit/s)", figures);

        Assert.Equal(DownloadBytes, download.Length);
        Assert.True(oneRequest >= TimeSpan.FromMilliseconds(100), $"a request took {oneRequest.TotalMilliseconds:0} ms: the link is not slow");
        Assert.InRange(mbits, 1, 11);
        Assert.Empty(load.Failures);
        Assert.True(load.Succeeded > 0);

        // No tunnel was taken for dead because the link was slow and full.
        Assert.All(tunnels, t => Assert.Contains(t, harness.Edge.Routes.Connections()));
    }

    [FullFact]
    public async Task With_1_percent_packet_loss_on_the_tunnel_every_request_succeeds()
    {
        await using var ns = await NetworkNamespace.CreateAsync();
        using var pki = new TestPki();
        await using var edge = await EdgeHost.StartAsync(pki, "lossy-edge", inNamespace: ns);
        await ns.DropPacketsAsync(1, edge.TunnelEndPoint.Port);
        await using var origin = OriginProcess.Start(pki, Host, [edge.TunnelEndPoint], inNamespace: ns);
        await Wait.UntilAsync(() => origin.CountLines(OriginProcess.Registered()) >= 4, TimeSpan.FromSeconds(90), "the origin registers 4 tunnel connections through the lossy link");

        var port = edge.VisitorEndPoint.Port.ToString(CultureInfo.InvariantCulture);
        var body = Path.Combine(pki.Directory, "body.bin");
        await File.WriteAllBytesAsync(body, new byte[20_000]);
        var figures = new List<string>();
        foreach (var (what, extra) in new[] { ("GET /", Array.Empty<string>()), ("POST /echo 20 KB", new[] { "-d", body }) })
        {
            var result = await Cli.RunAsync("ip", ["netns", "exec", ns.Name, "h2load", "-n", "2000", "-c", "4", "-m", "4", .. extra,
                $"--connect-to=127.0.0.1:{port}", $"http://{Host}:{port}/{(extra.Length > 0 ? "echo" : "")}"], TimeSpan.FromSeconds(240));
            output.WriteLine(result.Stdout);
            Assert.True(result.ExitCode == 0, Cli.Describe(result));
            var summary = string.Join("; ", result.Stdout.Split('\n').Where(l => l.StartsWith("finished", StringComparison.Ordinal) || l.StartsWith("requests:", StringComparison.Ordinal) || l.StartsWith("status codes:", StringComparison.Ordinal)));
            figures.Add($"{what}: {summary}");
            Assert.Matches(@"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout", result.Stdout);
            Assert.Matches(@"status codes: 2000 2xx", result.Stdout);
        }

        var dropped = await ns.DroppedPacketsAsync();
        figures.Add($"packets dropped on the tunnel port: {dropped}; tunnel registrations (4 at start): {origin.CountLines(OriginProcess.Registered())}");
        output.WriteLine(string.Join('\n', figures));
        FiguresFile.Append("1 % packet loss", string.Join('\n', figures));
        Assert.True(dropped > 0, "the loss rule dropped nothing");
    }

    [FullFact]
    public async Task An_edge_restarted_under_load_costs_the_other_edges_visitors_nothing_and_gets_its_share_back()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var restarting = await EdgeHost.StartAsync(harness.Pki, "restarting");
        var ports = (restarting.TunnelEndPoint.Port, restarting.VisitorEndPoint.Port);
        try
        {
            // Rebalancing checked every 2 s instead of 30, so that the moves back to the restarted edge
            // happen under the load too.
            var origin = await harness.StartOriginAsync(waitForConnections: false, configureTunnel: t =>
            {
                t.Edges = [$"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}", $"127.0.0.1:{ports.Item1}"];
                t.RebalanceInterval = TimeSpan.FromSeconds(2);
            });
            await Wait.UntilAsync(() => RegisteredWith(origin, "restarting") >= 1 && harness.Edge.Routes.Connections().Any(c => c.IsUsable), TimeSpan.FromSeconds(30), "the origin is on both edges");

            await using var load = Load.Start(harness.VisitorPort, Host, workers: 4);
            await Task.Delay(TimeSpan.FromSeconds(1));
            var killedAt = Stopwatch.StartNew();
            await restarting.Process.KillAsync();
            await restarting.DisposeAsync();

            // The origin's slots that were on the dead edge move to the live one.
            await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) >= 4, TimeSpan.FromSeconds(15), "4 tunnels on the surviving edge");
            var movedIn = killedAt.Elapsed;

            // The edge comes back where origins and visitors know it.
            var before = RegisteredWith(origin, "restarting");
            restarting = await EdgeHost.StartAsync(harness.Pki, "restarting", ports: ports);
            var restartedIn = killedAt.Elapsed;

            // Two of the four move back, one per check, each dialed before the old one closes; the
            // restarted edge is first in its cool-down (10 s) from the failed dials while it was down.
            await Wait.UntilAsync(() => RegisteredWith(origin, "restarting") - before >= 2 && harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 2,
                TimeSpan.FromSeconds(60), "2 tunnels moved back to the restarted edge");
            var spreadIn = killedAt.Elapsed - restartedIn;
            await Task.Delay(TimeSpan.FromSeconds(2));
            await load.StopAsync();

            var figures = $"{load.Succeeded} requests at the other edge, {load.Failures.Count} failed; 4 tunnels on it {movedIn.TotalMilliseconds:0} ms after the kill; " +
                $"edge back after {restartedIn.TotalSeconds:0.0} s; 2 tunnels moved back to it {spreadIn.TotalSeconds:0.0} s after it restarted (rebalancing every 2 s), no request failed across the moves";
            output.WriteLine(figures);
            FiguresFile.Append("edge restart under load", figures);
            Assert.Empty(load.Failures);
            Assert.True(load.Succeeded > 0);
        }
        finally
        {
            await restarting.DisposeAsync();
        }
    }

    [FullFact]
    public async Task A_lone_edge_restarted_gets_its_origin_back_within_30_seconds()
    {
        using var pki = new TestPki();
        var edge = await EdgeHost.StartAsync(pki, "lone");
        var ports = (edge.TunnelEndPoint.Port, edge.VisitorEndPoint.Port);
        await using var origin = OriginProcess.Start(pki, Host, [edge.TunnelEndPoint]);
        try
        {
            await Wait.UntilAsync(() => origin.CountLines(OriginProcess.Registered()) >= 4, TimeSpan.FromSeconds(60), "the origin registers");
            await edge.DisposeAsync();
            var clock = Stopwatch.StartNew();
            edge = await EdgeHost.StartAsync(pki, "lone", ports: ports);
            await Wait.UntilAsync(() => origin.CountLines(OriginProcess.Registered()) >= 8, TimeSpan.FromSeconds(30), "the origin's 4 tunnels register again");
            var back = clock.Elapsed;
            using var client = Visitors.Client(edge.VisitorEndPoint);
            Assert.Equal(System.Net.HttpStatusCode.OK, (await client.GetAsync($"http://{Host}/")).StatusCode);
            output.WriteLine($"4 tunnels back {back.TotalSeconds:0.0} s after the edge restarted");
            FiguresFile.Append("edge restart under load", $"lone edge: 4 tunnels back {back.TotalSeconds:0.0} s after it restarted");
        }
        finally
        {
            await edge.DisposeAsync();
        }
    }

    [FullFact]
    public async Task Origin_replicas_restarted_under_load_gracefully_or_by_a_crash_fail_no_idempotent_request()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var edges = new[] { harness.Edge.TunnelEndPoint };
        var replicas = new[] { OriginProcess.Start(harness.Pki, Host, edges, "replica-1"), OriginProcess.Start(harness.Pki, Host, edges, "replica-2") };
        try
        {
            await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(60), "both replicas are connected");
            await using var load = Load.Start(harness.VisitorPort, Host, workers: 6);
            await Task.Delay(TimeSpan.FromSeconds(1));

            // Graceful: SIGTERM, as a rolling deploy does; the app drains, the edge moves traffic.
            var graceful = await Cli.RunAsync("kill", ["-TERM", replicas[0].Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
            Assert.Equal(0, graceful.ExitCode);
            await replicas[0].Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            await replicas[0].DisposeAsync();
            replicas[0] = OriginProcess.Start(harness.Pki, Host, edges, "replica-1b");
            await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(60), "the replica is back");
            var failuresAfterGraceful = load.Failures.Count;

            // A crash: SIGKILL, in-flight requests and all.
            await replicas[1].KillAsync();
            await replicas[1].DisposeAsync();
            replicas[1] = OriginProcess.Start(harness.Pki, Host, edges, "replica-2b");
            await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 8, TimeSpan.FromSeconds(60), "the crashed replica is back");
            await Task.Delay(TimeSpan.FromSeconds(1));
            await load.StopAsync();

            var figures = $"{load.Succeeded} requests; graceful restart: {failuresAfterGraceful} failed; crash: {load.Failures.Count - failuresAfterGraceful} failed ({string.Join("; ", load.Failures)})";
            output.WriteLine(figures);
            FiguresFile.Append("origin restart under load", figures);
            Assert.Equal(0, failuresAfterGraceful);

            // A POST the crashed app may have acted on is not repeated: it gets the edge's 502. Nothing else fails.
            Assert.All(load.Failures, f => Assert.Matches(@"POST -> 502", f));
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }
        }
    }

    private static int RegisteredWith(TunnelHarness.Origin origin, string edgeName) =>
        origin.Logs.Entries.Count(e => e.EventId.Name == "Registered" && e.Message.Contains($"edge {edgeName} ", StringComparison.Ordinal));
}
