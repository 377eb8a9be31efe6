using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Bench;

/// <summary>What the edge costs and how fast it recovers, measured on edge processes of their own.</summary>
internal sealed class EdgeBenchmarks(BenchProcesses processes, Pki pki)
{
    private const string ManagedHeapMetric = "dotnet_gc_last_collection_heap_size_bytes";
    private const string CommittedMetric = "dotnet_gc_last_collection_memory_committed_size_bytes";

    /// <summary>
    /// Edge memory per idle tunnel connection: <paramref name="origins"/> origins in this process, each the
    /// real plugin (built on Tunnel.Edge.Dial) with <paramref name="perOrigin"/> connections, register with a
    /// fresh edge; the edge's resident set before and after, divided by the connection count.
    /// The plugin allows at most 64 connections per origin, hence several origins.
    /// </summary>
    public async Task<(Figure PerConnection, string Detail)> MemoryPerTunnelAsync(int origins, int perOrigin)
    {
        var edge = await EdgeNode.StartAsync(processes, pki, "memory-edge").ConfigureAwait(false);
        var apps = new List<WebApplication>();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            var before = await SampleResidentAsync(edge.Process, 3).ConfigureAwait(false);
            var scrapeBefore = await edge.ScrapeAsync().ConfigureAwait(false);
            for (var i = 0; i < origins; i++)
            {
                apps.Add(await StartOriginAsync([edge], perOrigin).ConfigureAwait(false));
            }

            var total = origins * perOrigin;
            await edge.WaitForTunnelsAsync(total, TimeSpan.FromSeconds(180)).ConfigureAwait(false);

            // Let the registration burst's garbage be collected: the keepalive PINGs keep the GC running.
            await Task.Delay(TimeSpan.FromSeconds(8)).ConfigureAwait(false);
            var after = await SampleResidentAsync(edge.Process, 5).ConfigureAwait(false);
            var scrapeAfter = await edge.ScrapeAsync().ConfigureAwait(false);
            var connected = EdgeNode.TunnelCount(scrapeAfter);
            var perConnection = (after - before) / (double)connected;

            // The managed heap's share, from the runtime's own metric (live objects at the last GC, so
            // an estimate); the rest is native: TLS state in OpenSSL, sockets, the runtime's own.
            var managedPerConnection = (EdgeNode.MetricSum(scrapeAfter, ManagedHeapMetric) - EdgeNode.MetricSum(scrapeBefore, ManagedHeapMetric)) / connected / 1024;
            var committedPerConnection = (EdgeNode.MetricSum(scrapeAfter, CommittedMetric) - EdgeNode.MetricSum(scrapeBefore, CommittedMetric)) / connected / 1024;
            return (new Figure(perConnection), $"edge VmRSS {before / Workloads.Mib:0.0} MiB idle, {after / Workloads.Mib:0.0} MiB with {connected} tunnel connections; per connection, live managed objects at the last GC {managedPerConnection:0.0} KiB, GC-committed memory {committedPerConnection:0.0} KiB");
        }
        finally
        {
            foreach (var app in apps)
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }

            await edge.Process.StopAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Registrations per second: <paramref name="count"/> dials (TCP, TLS with client certificate,
    /// registration) with Tunnel.Edge.Dial's <see cref="EdgeDialer"/>, <paramref name="parallel"/> at a time.
    /// The dialing side's TLS work shares the machine with the edge.
    /// </summary>
    public async Task<Figure> RegistrationsPerSecondAsync(int count, int parallel)
    {
        var edge = await EdgeNode.StartAsync(processes, pki, "registration-edge").ConfigureAwait(false);
        try
        {
            using var certificate = X509Certificate2.CreateFromPemFile(pki.OriginCertificate, pki.OriginKey);
            var options = new EdgeDialOptions { ClientCertificate = certificate, EdgeServerName = "localhost" };
            options.TrustedEdgeCertificates.ImportFromPemFile(pki.CaCertificate);
            options.Hostnames.Add(Setups.Hostname);
            var dialer = new EdgeDialer(options);
            var address = new EdgeAddress("127.0.0.1", edge.TunnelPort);

            // Warm both ends' code paths first.
            await DialManyAsync(dialer, address, parallel, parallel).ConfigureAwait(false);
            var started = Stopwatch.GetTimestamp();
            var failures = await DialManyAsync(dialer, address, count, parallel).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return new Figure((count - failures) / elapsed, failures > 0 ? $"{failures} failed" : null);
        }
        finally
        {
            await edge.Process.StopAsync().ConfigureAwait(false);
        }
    }

    private static async Task<int> DialManyAsync(EdgeDialer dialer, EdgeAddress address, int count, int parallel)
    {
        var connections = new System.Collections.Concurrent.ConcurrentBag<EdgeConnection>();
        var failures = 0;
        var next = -1;
        async Task WorkerAsync()
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < count)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    connections.Add(await dialer.DialAsync(address, index % 64, 0, timeout.Token).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is EdgeDialException or OperationCanceledException)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, parallel).Select(_ => Task.Run(WorkerAsync))).ConfigureAwait(false);
        foreach (var connection in connections)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        return failures;
    }

    /// <summary>
    /// Time to restore every connection after an edge is killed: an origin with 4 connections over two
    /// edges; one edge gets SIGKILL; the time until the other holds all 4. One figure per round.
    /// </summary>
    public async Task<List<double>> RestoreSecondsAsync(int rounds)
    {
        var results = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            var first = await EdgeNode.StartAsync(processes, pki, "restore-edge-a").ConfigureAwait(false);
            var second = await EdgeNode.StartAsync(processes, pki, "restore-edge-b").ConfigureAwait(false);
            var app = await StartOriginAsync([first, second], 4).ConfigureAwait(false);
            try
            {
                var deadline = DateTime.UtcNow.AddSeconds(60);
                int a, b;
                while (((a = await first.TunnelCountAsync().ConfigureAwait(false)) + (b = await second.TunnelCountAsync().ConfigureAwait(false)) < 4 || a == 0 || b == 0)
                    && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(100).ConfigureAwait(false);
                }

                if (a + b < 4 || a == 0 || b == 0)
                {
                    throw new TimeoutException($"The origin did not spread 4 connections over both edges ({a} and {b}).");
                }

                // Let the connections count as stable, as they would be in production.
                await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                var (victim, survivor) = a >= b ? (first, second) : (second, first);
                var killed = Stopwatch.GetTimestamp();
                victim.Process.KillHard();
                var restoreDeadline = DateTime.UtcNow.AddSeconds(60);
                while (await survivor.TunnelCountAsync().ConfigureAwait(false) < 4)
                {
                    if (DateTime.UtcNow > restoreDeadline)
                    {
                        throw new TimeoutException("The connections were not restored within 60 s.");
                    }

                    await Task.Delay(10).ConfigureAwait(false);
                }

                results.Add(Stopwatch.GetElapsedTime(killed).TotalSeconds);
            }
            finally
            {
                await app.DisposeAsync().ConfigureAwait(false);
                await first.Process.StopAsync().ConfigureAwait(false);
                await second.Process.StopAsync().ConfigureAwait(false);
            }
        }

        return results;
    }

    /// <summary>An origin app in this process: the real plugin, a one-line app, no other listener.</summary>
    private async Task<WebApplication> StartOriginAsync(IReadOnlyList<EdgeNode> edges, int connections)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseTunnelTransport(o =>
        {
            o.Edges.Clear();
            o.Edges.AddRange(edges.Select(e => $"127.0.0.1:{e.TunnelPort}"));
            o.Hostnames.Add(Setups.Hostname);
            o.HaConnections = connections;
            o.CertificatePath = pki.OriginCertificate;
            o.CertificateKeyPath = pki.OriginKey;
            o.EdgeCaPath = pki.CaCertificate;
            o.EdgeServerName = "localhost";
            o.KeepUrlListeners = false;
        });
        var app = builder.Build();
        app.MapGet("/", () => "hello\n");
        await app.StartAsync().ConfigureAwait(false);
        return app;
    }

    public static async Task<long> SampleResidentAsync(BenchProcess process, int samples)
    {
        var values = new List<long>();
        for (var i = 0; i < samples; i++)
        {
            if (i > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }

            values.Add(process.ResidentBytes());
        }

        values.Sort();
        return values[values.Count / 2];
    }
}
