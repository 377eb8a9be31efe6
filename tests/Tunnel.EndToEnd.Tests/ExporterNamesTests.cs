using System.Text.RegularExpressions;
using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// The edge's and the plugin's meters rendered by OpenTelemetry's own Prometheus exporter and by ours
/// must give the same metric names, types and labels, so a user who moves to the OpenTelemetry SDK keeps
/// the Grafana dashboard (docs/dashboards) working.
/// </summary>
public partial class ExporterNamesTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(30);

    // Labels that only OpenTelemetry's exporter adds (the instrumentation scope of each series).
    private static readonly HashSet<string> ScopeLabels = ["otel_scope_name", "otel_scope_version", "otel_scope_schema_url"];

    [Fact]
    public async Task OpenTelemetrys_prometheus_exporter_and_ours_give_the_same_names_types_and_labels()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var origin = await harness.StartOriginAsync(
            configureBuilder: builder =>
            {
                builder.WebHost.UseUrls("http://127.0.0.1:0");
                builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter("Tunnel.Edge", "Tunnel.Transport").AddPrometheusExporter());
            },
            configureApp: app =>
            {
                app.MapHelloMetrics();
                app.MapPrometheusScrapingEndpoint("/otel-metrics").RequireHost("127.0.0.1:*");
            });

        // Traffic of each kind the dashboard shows: answered requests, a host without a tunnel.
        var requests = await Cli.RunAsync("curl", [.. harness.CurlResolve(), .. harness.CurlResolve("nobody.test"), "-s", "-o", "/dev/null", "-o", "/dev/null",
            harness.VisitorUrl("/"), harness.VisitorUrl("/", "nobody.test")], CurlTimeout);
        Assert.Equal(0, requests.ExitCode);

        var local = origin.App.Urls.Single(u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
        var otel = Families(await ScrapeAsync($"{local}/otel-metrics"));
        var ours = Families(await ScrapeAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics"));
        foreach (var (name, family) in Families(await ScrapeAsync($"{local}/metrics")))
        {
            ours[name] = family;
        }

        // A family OpenTelemetry has not rendered yet (no measurement since it started) cannot be compared;
        // every one it renders must be ours as well, and most of ours must be among them.
        var differences = new List<string>();
        foreach (var (name, expected) in otel)
        {
            if (!ours.TryGetValue(name, out var actual))
            {
                differences.Add($"{name}: OpenTelemetry renders {expected}, ours has no such metric");
            }
            else if (actual != expected)
            {
                differences.Add($"{name}: OpenTelemetry renders {expected}, ours {actual}");
            }
        }

        foreach (var line in differences)
        {
            output.WriteLine(line);
        }

        Assert.True(differences.Count == 0, string.Join("\n", differences));
        var compared = ours.Keys.Count(otel.ContainsKey);
        output.WriteLine($"compared {compared} of our {ours.Count} families; OpenTelemetry rendered {otel.Count}");
        Assert.True(compared >= 10 && compared * 2 >= ours.Count, $"only {compared} of our {ours.Count} families were rendered by both: {string.Join(", ", ours.Keys.Except(otel.Keys))}");
    }

    private static async Task<string> ScrapeAsync(string url)
    {
        var result = await Cli.RunAsync("curl", ["-sS", "--fail", url], CurlTimeout);
        Assert.True(result.ExitCode == 0, $"{url}: {Cli.Describe(result)}");
        return result.Stdout;
    }

    /// <summary>A metric family: its type and the label names its series carry (beside <c>le</c>).</summary>
    private sealed record Family(string Type, string Labels)
    {
        public override string ToString() => $"{Type} {{{Labels}}}";
    }

    /// <summary>The <c>tunnel_</c> families of a scrape, by name.</summary>
    private static Dictionary<string, Family> Families(string text)
    {
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var labels = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (TypeLine().Match(line) is { Success: true } type && type.Groups["name"].Value.StartsWith("tunnel_", StringComparison.Ordinal))
            {
                types[type.Groups["name"].Value] = type.Groups["type"].Value;
                labels.TryAdd(type.Groups["name"].Value, new SortedSet<string>(StringComparer.Ordinal));
                continue;
            }

            if (line.StartsWith('#') || SampleLine().Match(line) is not { Success: true } sample)
            {
                continue;
            }

            var family = types.Keys.Where(name => sample.Groups["name"].Value.StartsWith(name, StringComparison.Ordinal)).MaxBy(name => name.Length);
            if (family is null)
            {
                continue;
            }

            foreach (Match label in LabelName().Matches(sample.Groups["labels"].Value))
            {
                var name = label.Groups["name"].Value;
                if (name != "le" && !ScopeLabels.Contains(name))
                {
                    labels[family].Add(name);
                }
            }
        }

        return types.ToDictionary(t => t.Key, t => new Family(t.Value, string.Join(",", labels[t.Key])), StringComparer.Ordinal);
    }

    [GeneratedRegex(@"^# TYPE (?<name>\S+) (?<type>\S+)")]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? ")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<name>[a-zA-Z_][a-zA-Z0-9_]*)=""")]
    private static partial Regex LabelName();
}
