using System.Net;
using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class TunnelLifecycleTests
{
    [Fact]
    public async Task Four_connections_register_by_default_and_a_closed_one_is_redialed()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync();

        var connections = harness.Edge.Routes.Connections().ToArray();
        Assert.Equal(4, connections.Length);
        Assert.Equal(4, connections.Select(c => c.ConnectionIndex).Distinct().Count());

        // The edge drops one connection; the plugin notices and dials again.
        var dropped = connections[1];
        await dropped.DisposeAsync();
        await Wait.UntilAsync(() => !harness.Edge.Routes.Connections().Contains(dropped), TimeSpan.FromSeconds(10), "the dropped connection leaves the route table");
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(10), "the plugin restores 4 connections");

        var replacement = harness.Edge.Routes.Connections().Single(c => !connections.Contains(c));
        Assert.Equal(dropped.ConnectionIndex, replacement.ConnectionIndex);
        Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "Disconnected");

        using var client = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/") { Headers = { Host = TunnelHarness.Hostname } };
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task After_a_burst_of_a_hundred_registrations_the_edge_gives_back_memory_once_and_keeps_serving()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureTunnel: t => t.HaConnections = 50);
        await harness.StartOriginAsync(configureTunnel: t => t.HaConnections = 50);

        // Two seconds after the hundredth registration, with no other since.
        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "MemoryTrimmed"), TimeSpan.FromSeconds(30), "the edge trims after the burst");
        var trimmed = harness.EdgeLogs.Entries.Single(e => e.EventId.Name == "MemoryTrimmed");
        Assert.Matches(@"memory of 1\d\d registrations", trimmed.Message);

        // The compaction moved every tunnel's objects; all of them still serve (a loaded machine may
        // hold a heartbeat back long enough to mark a tunnel silent for a moment, hence the wait).
        await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 100, TimeSpan.FromSeconds(20), "all 100 tunnels are usable after the trim");
        using var client = new HttpClient();
        for (var i = 0; i < 20; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/") { Headers = { Host = TunnelHarness.Hostname } };
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // No further registration, no further trim.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(harness.EdgeLogs.Entries, e => e.EventId.Name == "MemoryTrimmed");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Idle_tunnels_hold_no_TLS_record_buffers_unless_turned_off_and_carry_large_bodies_either_way(bool release)
    {
        await using var harness = await TunnelHarness.StartAsync(edge => edge.ReleaseIdleTlsBuffers = release);
        await harness.StartOriginAsync();

        var connections = harness.Edge.Routes.Connections().ToArray();
        Assert.Equal(4, connections.Length);
        Assert.All(connections, c => Assert.Equal(release, c.ReleasesIdleTlsBuffers));
        Assert.DoesNotContain(harness.EdgeLogs.Entries, e => e.EventId.Name == "TlsBufferReleaseUnavailable");

        // Buffers taken and given back for every record: bodies larger than many records, both ways,
        // on several streams at once, arrive byte for byte.
        using var client = new HttpClient();
        const int Size = 3 * 1024 * 1024 + 123;
        var upload = new byte[Size];
        Random.Shared.NextBytes(upload);
        var expectedDownload = new byte[Size];
        for (var i = 0; i < Size; i++)
        {
            expectedDownload[i] = HelloEndpoints.PatternByte(i);
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            using var echo = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{harness.VisitorPort}/echo") { Headers = { Host = TunnelHarness.Hostname }, Content = new ByteArrayContent(upload) };
            using var echoed = await client.SendAsync(echo);
            Assert.Equal(HttpStatusCode.OK, echoed.StatusCode);
            var echoedBody = await echoed.Content.ReadAsByteArrayAsync();
            Assert.True(upload.AsSpan().SequenceEqual(echoedBody), "the echoed body matches");

            using var download = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/download?bytes={Size}") { Headers = { Host = TunnelHarness.Hostname } };
            using var downloaded = await client.SendAsync(download);
            Assert.Equal(HttpStatusCode.OK, downloaded.StatusCode);
            var downloadedBody = await downloaded.Content.ReadAsByteArrayAsync();
            Assert.True(expectedDownload.AsSpan().SequenceEqual(downloadedBody), "the download matches");
        }));

        Assert.All(harness.Edge.Routes.Connections(), c => Assert.Equal(release, c.ReleasesIdleTlsBuffers));
    }

    [Fact]
    public async Task A_hostname_the_certificate_does_not_cover_is_refused_and_retried_with_backoff()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync(
            hostnames: ["other.test"],
            certificateDomains: ["hello.test"],
            waitForConnections: false);

        await Wait.UntilAsync(() => origin.Logs.Entries.Count(e => e.EventId.Name == "RegistrationRejected") >= 4, TimeSpan.FromSeconds(10), "every slot logs its refusal");
        var refusal = origin.Logs.Entries.First(e => e.EventId.Name == "RegistrationRejected");
        Assert.Equal(LogLevel.Error, refusal.Level);
        Assert.Contains("hostname_not_authorized", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("other.test", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("hello.test", refusal.Message, StringComparison.Ordinal);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "RegistrationRefused" && e.Message.Contains("other.test", StringComparison.Ordinal));

        // Not a tight loop: a refusal that will not change by itself waits 15 to 30 s before the next try.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(4, harness.EdgeLogs.Entries.Count(e => e.EventId.Name == "RegistrationRefused"));
        Assert.Empty(harness.Edge.Routes.Connections());

        // The app itself is still up and serving on its plain listener would be the next test; here it
        // must simply still be running.
        Assert.False(origin.App.Lifetime.ApplicationStopping.IsCancellationRequested);
    }

    [Fact]
    public async Task An_app_with_a_localhost_listener_answers_there_and_through_the_tunnel()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var port = FreePort();
        var origin = await harness.StartOriginAsync(configureBuilder: builder => builder.WebHost.UseUrls($"http://127.0.0.1:{port}"));

        using var client = new HttpClient();
        var direct = await client.GetStringAsync($"http://127.0.0.1:{port}/headers");
        Assert.Contains("\"viaTunnel\":false", direct, StringComparison.Ordinal);

        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/headers") { Headers = { Host = TunnelHarness.Hostname } };
        using var response = await client.SendAsync(request);
        var tunneled = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"viaTunnel\":true", tunneled, StringComparison.Ordinal);

        // Forwarded headers are honoured on the tunnel only: on the plain listener anyone could send them.
        using var spoof = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/headers") { Headers = { { "X-Forwarded-For", "6.6.6.6" } } };
        using var spoofed = await client.SendAsync(spoof);
        var spoofedBody = await spoofed.Content.ReadAsStringAsync();
        Assert.Contains("\"remoteIp\":\"127.0.0.1\"", spoofedBody, StringComparison.Ordinal);
        Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "KeepingUrls");

        // Kestrel binds both, so its warning that it overrides the URLs would be false.
        Assert.DoesNotContain(origin.Logs.Entries, e => e.Message.Contains("Overriding address", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Urls_given_in_code_or_as_http_ports_answer_beside_the_tunnel_without_kestrels_override_warning()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var inCode = FreePort();
        var asPort = FreePort();
        var fromPorts = await harness.StartOriginAsync(configureBuilder: builder => builder.WebHost.UseSetting("http_ports", asPort.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var fromCode = await harness.StartOriginAsync(configureApp: app => app.Urls.Add($"http://127.0.0.1:{inCode}"), waitForConnections: false);

        using var client = new HttpClient();
        foreach (var port in new[] { inCode, asPort })
        {
            var direct = await client.GetStringAsync($"http://127.0.0.1:{port}/headers");
            Assert.Contains("\"viaTunnel\":false", direct, StringComparison.Ordinal);
        }

        foreach (var origin in new[] { fromPorts, fromCode })
        {
            Assert.Contains(origin.Logs.Entries, e => e.EventId.Name == "KeepingUrls");
            Assert.DoesNotContain(origin.Logs.Entries, e => e.Message.Contains("Overriding address", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task The_registration_line_names_an_edge_without_a_region_without_empty_parentheses()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Region = "");
        var origin = await harness.StartOriginAsync();

        var registered = origin.Logs.Entries.Where(e => e.EventId.Name == "Registered").Select(e => e.Message).ToList();
        Assert.NotEmpty(registered);
        Assert.All(registered, m => Assert.Contains("registered with edge test-edge at ", m, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_idle_tunnel_outlives_kestrels_keepalive_timeout()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureBuilder: builder => builder.WebHost.ConfigureKestrel(k => k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(2)));
        var before = harness.Edge.Routes.Connections().ToHashSet();

        // Longer than the keep-alive timeout and than the edge's wait for the anchor's answer (10 s).
        await Task.Delay(TimeSpan.FromSeconds(12));

        Assert.True(before.SetEquals(harness.Edge.Routes.Connections()), "an idle tunnel connection was closed and replaced");
    }

    [Fact]
    public async Task Stopping_the_app_closes_its_tunnels_and_stops_dialing()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync();

        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await origin.App.StopAsync(stop.Token);
        }

        await Wait.UntilAsync(() => harness.Edge.Routes.ConnectionCount == 0, TimeSpan.FromSeconds(10), "every tunnel connection is gone");
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(0, harness.Edge.Routes.ConnectionCount);
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
