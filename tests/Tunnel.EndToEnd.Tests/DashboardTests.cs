using System.Text.Json.Nodes;
using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Tunnel.EndToEnd.Tests.Acme;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// The Grafana dashboard (docs/dashboards/tunnel-health.json) against a real Prometheus scraping a real
/// edge's admin <c>/metrics</c> and real origins' <c>/metrics</c>; and the edge's status page in a real browser.
/// </summary>
public class DashboardTests(ITestOutputHelper output)
{
    private const string EdgeJob = "tunnel-edge";
    private const string OriginJob = "hello-origin";
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(10);

    // What Grafana puts in place of its variables; the test's scrapes are 1 s apart, so 1m holds many.
    private static readonly Dictionary<string, string> GrafanaVariables = new(StringComparer.Ordinal)
    {
        ["$__rate_interval"] = "1m",
        ["$__interval"] = "1m",
        ["$__range"] = "5m",
    };

    // Queries the edge-and-origins test cannot populate, each with the reason and the test that checks it.
    private static readonly Dictionary<string, string> TestedElsewhere = new(StringComparer.Ordinal)
    {
        [EarliestExpiryQuery] = "needs an edge holding an ACME certificate (pebble): The_earliest_certificate_expiry_panel_shows_the_days_left_on_a_pebble_certificate",
    };

    private const string EarliestExpiryQuery = "min(tunnel_edge_acme_certificate_expiry_days)";

    [Fact]
    public async Task Every_dashboard_query_returns_the_expected_series_from_a_real_prometheus_scraping_edge_and_origins()
    {
        Assert.True(File.Exists(PrometheusServer.ExecutablePath), "prometheus is not installed (Debian: apt-get install prometheus)");
        var queries = DashboardQueries();
        Assert.True(queries.Count >= 10, $"the dashboard has {queries.Count} queries");
        Assert.All(TestedElsewhere.Keys, q => Assert.Contains(q, queries));
        queries.RemoveAll(TestedElsewhere.ContainsKey);

        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync(configureBuilder: LoopbackListener, configureApp: app => app.MapHelloMetrics());
        // A second replica whose certificate does not cover the name it asks for: refused, retried quickly.
        var refused = await harness.StartOriginAsync(
            hostnames: ["other.test"],
            certificateDomains: [TunnelHarness.Hostname],
            configureTunnel: t =>
            {
                t.Redial.BaseDelay = TimeSpan.FromMilliseconds(200);
                t.Redial.MaxDelay = TimeSpan.FromSeconds(1);
            },
            configureBuilder: LoopbackListener,
            waitForConnections: false,
            configureApp: app => app.MapHelloMetrics());

        // Prometheus takes a series' first sample as its baseline, so each series must exist before
        // the traffic the rates are to show: one request of each kind now, the rest once scraped.
        await RequestsAsync(harness, 1, unknownHosts: 1);

        // /metrics answers on the local listener only: through the tunnel the visitor's host does not match.
        var tunneled = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-s", "-o", "/dev/null", "-w", "%{http_code}", harness.VisitorUrl("/metrics")], CurlTimeout);
        Assert.Equal("404", tunneled.Stdout);

        var edgeTarget = $"127.0.0.1:{harness.Edge.AdminEndPoint!.Port}";
        await using var prometheus = await PrometheusServer.StartAsync(new Dictionary<string, string[]>
        {
            [EdgeJob] = [edgeTarget],
            [OriginJob] = [MetricsTarget(origin.App), MetricsTarget(refused.App)],
        });
        await UntilAsync(prometheus, "count(up == 1) == 3", TimeSpan.FromSeconds(15), "Prometheus has scraped the edge and both origins");

        await RequestsAsync(harness, 5, unknownHosts: 1);

        // Two dropped tunnel connections: the first creates the redial series, the second increases it.
        for (var drop = 0; drop < 2; drop++)
        {
            await harness.Edge.Routes.Connections().First().DisposeAsync();
            await Wait.UntilAsync(() => harness.Edge.Routes.Connections().Count(c => c.IsUsable) == 4, TimeSpan.FromSeconds(10), "the origin has redialed");
            if (drop == 0)
            {
                await UntilAsync(prometheus, "count(tunnel_redials_total) > 0", TimeSpan.FromSeconds(10), "Prometheus has scraped the redial");
            }
        }

        var checks = new List<(string Expression, Func<IReadOnlyList<PrometheusServer.Series>, bool> Holds, string What)>
        {
            (Query(queries, "sum by (tunnel_edge_name) (tunnel_connections{"), r => r.Count == 1 && r[0].Label("tunnel_edge_name") == "test-edge" && r[0].Value == 4, "4 registered connections at test-edge"),
            (Query(queries, "sum by (job, instance, tunnel_edge_name, tunnel_connection_state)"), r =>
                r.Any(s => s.Label("job") == OriginJob && s.Label("instance") == MetricsTarget(origin.App) && s.Label("tunnel_connection_state") == "registered" && s.Value == 4)
                && r.Any(s => s.Label("instance") == MetricsTarget(refused.App) && s.Label("tunnel_connection_state") == "connecting" && s.Value > 0), "the origin's 4 registered and the refused origin's connecting slots"),
            (Query(queries, "sum by (instance) (tunnel_edge_tunnels)"), r => r.Any(s => s.Value == 4 && s.Label("instance") == edgeTarget), "4 tunnels at the edge"),
            (Query(queries, "sum by (tunnel_rejection_reason) (increase(tunnel_registration_rejections_total"), r => r.Any(s => s.Label("tunnel_rejection_reason") == "hostname_not_authorized" && s.Value > 0), "hostname_not_authorized rejections at the origin"),
            (Query(queries, "sum by (tunnel_registration_result, tunnel_rejection_reason)"), r => r.Any(s => s.Label("tunnel_registration_result") == "rejected" && s.Label("tunnel_rejection_reason") == "hostname_not_authorized" && s.Value > 0), "hostname_not_authorized refusals at the edge"),
            (Query(queries, "sum by (job, instance, tunnel_redial_cause)"), r => r.Any(s => s.Label("instance") == MetricsTarget(origin.App) && s.Value > 0), "a redial of the origin"),
            (Query(queries, "sum by (tunnel_route) (rate(tunnel_edge_requests_total["), r => r.Any(s => s.Label("tunnel_route") == TunnelHarness.Hostname && s.Value > 0), "a request rate for the route"),
            (Query(queries, "sum by (error_type) (increase(tunnel_edge_upstream_errors_total"), r => r.Any(s => s.Label("error_type") == "no_tunnel" && s.Value > 0), "a no_tunnel upstream error"),
            (Query(queries, "sum by (tunnel_dial_phase) (rate(tunnel_dial_duration_seconds_sum"), r => r.Count == 3 && r.All(s => s.Value > 0 && s.Value < 1), "loopback dial phases take under 1 s on average"),
            (Query(queries, "histogram_quantile(0.99, sum by (le, tunnel_route)"), r => r.Any(s => s.Label("tunnel_route") == TunnelHarness.Hostname && s.Value > 0 && double.IsFinite(s.Value)), "a latency for the route"),
        };

        // Every query returns series, and at least one finite value, once the scrapes have caught up.
        var results = new Dictionary<string, IReadOnlyList<PrometheusServer.Series>>(StringComparer.Ordinal);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        List<string> failures;
        while (true)
        {
            failures = [];
            foreach (var expression in queries)
            {
                var result = results[expression] = await prometheus.QueryAsync(expression);
                if (!result.Any(s => double.IsFinite(s.Value)))
                {
                    failures.Add($"{expression}: no finite value in [{string.Join("; ", result)}]");
                }
            }

            failures.AddRange(checks.Where(c => !c.Holds(results[c.Expression])).Select(c => $"{c.What}: {c.Expression} gave [{string.Join("; ", results[c.Expression])}]"));
            if (failures.Count == 0 || DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(500);
        }

        foreach (var (expression, result) in results)
        {
            output.WriteLine($"{expression}\n    {string.Join("\n    ", result)}");
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n" + prometheus.Output);
    }

    [Fact]
    public async Task The_earliest_certificate_expiry_panel_shows_the_days_left_on_a_pebble_certificate()
    {
        const string Name = "site.example.test";
        var panel = DashboardPanels().Single(p => p["title"]?.GetValue<string>() == "Earliest certificate expiry");
        var expression = Assert.Single(panel["targets"]!.AsArray())!["expr"]!.GetValue<string>();
        Assert.Equal(EarliestExpiryQuery, expression);
        var steps = panel["fieldConfig"]!["defaults"]!["thresholds"]!["steps"]!.AsArray();
        Assert.Equal(["red:", "orange:7", "green:20"], steps.Select(t => $"{t!["color"]}:{t["value"]}"));

        await using var bed = await AcmeTestBed.StartAsync([AcmeTestBed.AddressRecord(Name)], acme =>
        {
            acme.Names = [Name];
            acme.Challenges = ["http-01"];
        });
        var status = await bed.WaitForCertificateAsync(Name, TimeSpan.FromSeconds(30));
        await using var prometheus = await PrometheusServer.StartAsync(new Dictionary<string, string[]>
        {
            [EdgeJob] = [$"127.0.0.1:{bed.Harness.Edge.AdminEndPoint!.Port}"],
        });

        IReadOnlyList<PrometheusServer.Series> result = [];
        await EdgeCluster.UntilAsync(async () => (result = await prometheus.QueryAsync(expression)).Count > 0, TimeSpan.FromSeconds(15),
            $"Prometheus has the edge's certificate expiry ({expression})");
        var days = Assert.Single(result).Value;
        var left = (status.NotAfter!.Value - DateTimeOffset.UtcNow).TotalDays;
        output.WriteLine($"{expression} = {days} (the certificate expires in {left} days)");
        Assert.InRange(days, left - 0.01, left + 0.01);
        Assert.True(days > 0);
    }

    [Fact]
    public async Task A_real_browser_renders_the_status_page_with_the_route_its_connections_and_requests()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();
        await RequestsAsync(harness, 3, unknownHosts: 0);

        await using var browser = await HeadlessBrowser.StartAsync();
        await using var page = await browser.OpenAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/");
        await page.WaitUntilAsync("document.readyState === 'complete' && document.querySelectorAll('table').length >= 3", TimeSpan.FromSeconds(15), "the status page has rendered");

        // Each h2's table, as rows of cell texts, read from the DOM the browser built.
        var shown = (await page.EvaluateAsync("""
            (() => {
              const table = title => {
                const h = [...document.querySelectorAll('h2')].find(h => h.textContent === title);
                const t = h && h.nextElementSibling;
                return t && t.tagName === 'TABLE' ? [...t.rows].slice(1).map(r => [...r.cells].map(c => c.textContent)) : [];
              };
              return {
                title: document.querySelector('h1').textContent,
                summary: document.querySelector('h1 + p').textContent,
                routes: table('Routes'),
                connectors: table('Connectors (origin replicas)'),
                requests: table('Requests in the last minute'),
              };
            })()
            """))!.AsObject();
        output.WriteLine(shown.ToJsonString());

        var connections = harness.Edge.Routes.Connections();
        Assert.Equal("Edge test-edge in test-region", shown["title"]!.GetValue<string>());
        Assert.Contains("4 tunnel connections from 1 connectors", shown["summary"]!.GetValue<string>(), StringComparison.Ordinal);

        // Routes: hostname in the first row, then one row per connection (id in column 3, state last).
        var routes = Rows(shown["routes"]);
        Assert.Equal(4, routes.Count);
        Assert.Equal(TunnelHarness.Hostname, routes[0][0]);
        Assert.Equal(connections.Select(c => c.Id).Order(StringComparer.Ordinal), routes.Select(r => r[2]).Order(StringComparer.Ordinal));
        Assert.All(routes, r => Assert.Equal("ready", r[^1]));

        var connector = Assert.Single(Rows(shown["connectors"]));
        Assert.Equal(connections.First().ConnectorId, connector[0]);
        Assert.Equal("4", connector[1]);
        Assert.Equal(TunnelHarness.Hostname, connector[2]);

        var requests = Assert.Single(Rows(shown["requests"]));
        Assert.Equal([TunnelHarness.Hostname, "3"], requests[..2]);

        var screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "status-page.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(screenshot);
        Assert.True(new FileInfo(screenshot).Length > 1000);
        output.WriteLine($"screenshot: {screenshot}");
    }

    /// <summary>Every <c>expr</c> of every panel (rows' nested panels too), Grafana's variables substituted.</summary>
    private static List<string> DashboardQueries()
    {
        var queries = new List<string>();
        foreach (var panel in DashboardPanels())
        {
            foreach (var target in panel["targets"]?.AsArray() ?? [])
            {
                var expression = target!["expr"]!.GetValue<string>();
                foreach (var (variable, value) in GrafanaVariables)
                {
                    expression = expression.Replace(variable, value, StringComparison.Ordinal);
                }

                Assert.DoesNotContain("$", expression, StringComparison.Ordinal);
                queries.Add(expression);
            }
        }

        return queries;
    }

    /// <summary>Every panel of the dashboard, rows' nested panels too.</summary>
    private static List<JsonNode> DashboardPanels()
    {
        var path = Path.Combine(Repository.Root, "docs", "dashboards", "tunnel-health.json");
        var dashboard = JsonNode.Parse(File.ReadAllText(path))!;
        Assert.Equal(39, dashboard["schemaVersion"]!.GetValue<int>());

        var found = new List<JsonNode>();
        void Collect(JsonArray? panels)
        {
            foreach (var panel in panels ?? [])
            {
                found.Add(panel!);
                Collect(panel!["panels"]?.AsArray());
            }
        }

        Collect(dashboard["panels"]!.AsArray());
        return found;
    }

    /// <summary>The one dashboard query that begins with <paramref name="start"/>.</summary>
    private static string Query(List<string> queries, string start) => Assert.Single(queries, q => q.StartsWith(start, StringComparison.Ordinal));

    /// <summary>A plain loopback listener beside the tunnel (the plugin keeps URL listeners), for <c>/metrics</c>.</summary>
    private static void LoopbackListener(WebApplicationBuilder builder) => builder.WebHost.UseUrls("http://127.0.0.1:0");

    private static string MetricsTarget(WebApplication app) =>
        new Uri(Assert.Single(app.Urls, u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal))).Authority;

    private static async Task RequestsAsync(TunnelHarness harness, int hello, int unknownHosts)
    {
        var arguments = new List<string>(harness.CurlResolve()) { "-s", "-w", "%{http_code}\\n" };
        for (var i = 0; i < hello; i++)
        {
            arguments.AddRange(["-o", "/dev/null", harness.VisitorUrl("/")]);
        }

        var got = await Cli.RunAsync("curl", arguments, CurlTimeout);
        Assert.Equal(string.Concat(Enumerable.Repeat("200\n", hello)), got.Stdout);
        for (var i = 0; i < unknownHosts; i++)
        {
            var unknown = await Cli.RunAsync("curl", [.. harness.CurlResolve("nobody.test"), "-s", "-o", "/dev/null", "-w", "%{http_code}", harness.VisitorUrl("/", "nobody.test")], CurlTimeout);
            Assert.Equal("502", unknown.Stdout);
        }
    }

    private static async Task UntilAsync(PrometheusServer prometheus, string expression, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while ((await prometheus.QueryAsync(expression)).Count == 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                var up = await prometheus.QueryAsync("up");
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting until {what} ({expression}); up: {string.Join("; ", up)}\n{prometheus.Output}");
            }

            await Task.Delay(200);
        }
    }

    private static List<string[]> Rows(JsonNode? rows) =>
        [.. rows!.AsArray().Select(r => r!.AsArray().Select(c => c!.GetValue<string>()).ToArray())];
}
