using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge;
using Tunnel.Edge.Telemetry;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

public partial class EdgeAdminTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Metrics_show_tunnels_requests_durations_bytes_and_a_no_tunnel_error_after_traffic()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();

        const int Gets = 5;
        var gets = new List<string>(harness.CurlResolve()) { "-s", "-w", "%{http_code}\\n" };
        for (var i = 0; i < Gets; i++)
        {
            gets.AddRange(["-o", "/dev/null", harness.VisitorUrl("/")]);
        }

        var got = await Cli.RunAsync("curl", gets, CurlTimeout);
        Assert.Equal(string.Concat(Enumerable.Repeat("200\n", Gets)), got.Stdout);

        var body = Path.GetTempFileName();
        await File.WriteAllBytesAsync(body, new byte[1000]);
        var echo = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + body, harness.VisitorUrl("/echo")], CurlTimeout);
        File.Delete(body);
        Assert.Equal("200", echo.Stdout);

        var unknown = await Cli.RunAsync("curl", [.. harness.CurlResolve("nobody.test"), "-s", "-o", "/dev/null", "-w", "%{http_code}", harness.VisitorUrl("/", "nobody.test")], CurlTimeout);
        Assert.Equal("502", unknown.Stdout);

        // The middleware records a request once its response has ended, just after curl has it.
        string text = "";
        await Wait.UntilAsync(() =>
        {
            text = ScrapeAsync(harness).GetAwaiter().GetResult();
            return Value(text, "tunnel_edge_requests_total", "tunnel_route=\"hello.test\",http_response_status_class=\"2xx\"") == Gets + 1
                && Value(text, "tunnel_edge_upstream_errors_total", "error_type=\"no_tunnel\"") == 1
                && Value(text, "tunnel_edge_active_streams", null) == 0;
        }, TimeSpan.FromSeconds(10), "the requests are counted");
        output.WriteLine(text);

        Assert.Equal(4, Value(text, "tunnel_edge_tunnels", null));
        Assert.Equal(1, Value(text, "tunnel_edge_connectors", null));
        Assert.Equal(4, Value(text, "tunnel_edge_registrations_total", "tunnel_registration_result=\"accepted\""));
        Assert.Equal(1, Value(text, "tunnel_edge_requests_total", "http_response_status_class=\"5xx\""));
        Assert.Equal(1000, Value(text, "tunnel_edge_bytes_total", "network_io_direction=\"received\""));
        Assert.True(Value(text, "tunnel_edge_bytes_total", "network_io_direction=\"transmitted\"") >= 1000);
        Assert.Contains("# TYPE tunnel_edge_requests_total counter\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE tunnel_edge_request_duration_seconds histogram\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE tunnel_edge_tunnels gauge\n", text, StringComparison.Ordinal);

        // The runtime's own meter rides along: memory, GC and thread pool beside the edge's figures.
        Assert.True(Value(text, "dotnet_process_memory_working_set_bytes", null) > 0, "the working set is exported");
        Assert.Contains("dotnet_gc_last_collection_heap_size_bytes{gc_heap_generation=\"gen0\"} ", text, StringComparison.Ordinal);
        Assert.Contains("dotnet_thread_pool_thread_count", text, StringComparison.Ordinal);

        // The histogram's buckets only grow with le, end at +Inf with the count, and count every request.
        const string Series = "tunnel_route=\"hello.test\",http_response_status_class=\"2xx\"";
        var buckets = BucketLine().Matches(text).Where(m => m.Groups["labels"].Value == Series)
            .Select(m => (Le: m.Groups["le"].Value, Count: double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture))).ToList();
        Assert.Equal(15, buckets.Count);
        Assert.Equal("+Inf", buckets[^1].Le);
        Assert.All(buckets.Zip(buckets.Skip(1)), pair => Assert.True(pair.First.Count <= pair.Second.Count, $"bucket le={pair.Second.Le} is below le={pair.First.Le}"));
        Assert.Equal(Gets + 1, buckets[^1].Count);
        Assert.Equal(Gets + 1, Value(text, "tunnel_edge_request_duration_seconds_count", Series));
        Assert.True(Value(text, "tunnel_edge_request_duration_seconds_sum", Series) > 0);
    }

    [Fact]
    public async Task The_status_page_lists_the_route_its_connector_and_connections_and_a_refused_registrations_reason()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();
        var connections = harness.Edge.Routes.Connections();
        Assert.Equal(4, connections.Count);

        // A second replica whose certificate does not cover the name it asks for.
        await harness.StartOriginAsync(hostnames: ["other.test"], certificateDomains: ["hello.test"], waitForConnections: false);
        string metrics = "";
        await Wait.UntilAsync(() =>
        {
            metrics = ScrapeAsync(harness).GetAwaiter().GetResult();
            return Value(metrics, "tunnel_edge_registrations_total", "tunnel_registration_result=\"rejected\",tunnel_rejection_reason=\"hostname_not_authorized\"") >= 1;
        }, TimeSpan.FromSeconds(10), "the refusal is counted");

        // What an origin sends is shown encoded, never as markup.
        harness.Edge.Services.GetRequiredService<EdgeConnectionEvents>().Refused("203.0.113.9:1", "invalid_registration", "<script>alert(1)</script>");

        var page = await Cli.RunAsync("curl", ["-s", "-i", $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/"], CurlTimeout);
        output.WriteLine(page.Stdout);
        Assert.Contains("200 OK", page.Stdout, StringComparison.Ordinal);
        Assert.Contains("Content-Type: text/html; charset=utf-8", page.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("<meta http-equiv=\"refresh\" content=\"5\">", page.Stdout, StringComparison.Ordinal);
        Assert.Contains("<code>hello.test</code>", page.Stdout, StringComparison.Ordinal);
        Assert.Contains("<code>" + connections.First().ConnectorId + "</code>", page.Stdout, StringComparison.Ordinal);
        Assert.All(connections, c => Assert.Contains("<code>" + c.Id + "</code>", page.Stdout, StringComparison.Ordinal));
        Assert.Contains("4 tunnel connections from 1 connectors", page.Stdout, StringComparison.Ordinal);
        Assert.Contains("hostname_not_authorized", page.Stdout, StringComparison.Ordinal);
        Assert.Contains("does not cover &#39;other.test&#39;", page.Stdout, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", page.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", page.Stdout, StringComparison.Ordinal);
        Assert.Equal(4, Regex.Count(page.Stdout, "<td>registered</td>"));
    }

    [Fact]
    public async Task The_admin_listener_is_on_loopback_by_default_and_unreachable_from_the_visitor_port()
    {
        var defaults = new EdgeOptions();
        Assert.Equal("127.0.0.1", defaults.AdminAddress);
        Assert.Equal(9844, defaults.AdminPort);

        await using var harness = await TunnelHarness.StartAsync();
        Assert.True(IPAddress.IsLoopback(harness.Edge.AdminEndPoint!.Address));
        Assert.NotEqual(0, harness.Edge.AdminEndPoint.Port);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "AdminListening");

        // The visitor port forwards /metrics like any other path; with no tunnel that is the edge's 502.
        var visitor = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-s", "-o", "/dev/null", "-w", "%{http_code}", harness.VisitorUrl("/metrics")], CurlTimeout);
        Assert.Equal("502", visitor.Stdout);
        var missing = await Cli.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", $"http://127.0.0.1:{harness.Edge.AdminEndPoint.Port}/nothing"], CurlTimeout);
        Assert.Equal("404", missing.Stdout);

        await using var off = await TunnelHarness.StartAsync(o => o.AdminPort = -1);
        Assert.Null(off.Edge.AdminEndPoint);
    }

    private static async Task<string> ScrapeAsync(TunnelHarness harness)
    {
        var result = await Cli.RunAsync("curl", ["-s", "-D", "-", $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics"], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Contains("Content-Type: text/plain; version=0.0.4; charset=utf-8", result.Stdout, StringComparison.OrdinalIgnoreCase);
        return result.Stdout[(result.Stdout.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
    }

    /// <summary>The value of one series (exact labels, or none), or -1 when it is absent.</summary>
    private static double Value(string text, string name, string? labels)
    {
        var prefix = labels is null ? name + " " : name + "{" + labels + "} ";
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? -1 : double.Parse(line[prefix.Length..], CultureInfo.InvariantCulture);
    }

    [GeneratedRegex("^tunnel_edge_request_duration_seconds_bucket\\{(?<labels>.*),le=\"(?<le>[^\"]+)\"\\} (?<value>\\S+)$", RegexOptions.Multiline)]
    private static partial Regex BucketLine();
}
