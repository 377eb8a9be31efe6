using System.Diagnostics.Metrics;
using Tunnel.Telemetry.Prometheus;

namespace Tunnel.Edge.Tests.Telemetry;

/// <summary>The /metrics stand-in's naming, escaping and aggregation, without a server.</summary>
public class PrometheusTextTests
{
    [Theory]
    [InlineData("tunnel.edge.request.duration", "s", "Histogram", "tunnel_edge_request_duration_seconds")]
    [InlineData("tunnel.edge.bytes", "By", "Counter", "tunnel_edge_bytes_total")]
    [InlineData("tunnel.edge.requests", "{request}", "Counter", "tunnel_edge_requests_total")]
    [InlineData("tunnel.edge.tunnels", "{connection}", "Gauge", "tunnel_edge_tunnels")]
    [InlineData("http.server.active-requests", "1", "Gauge", "http_server_active_requests_ratio")]
    [InlineData("2fast..speed", "By/s", "Gauge", "_2fast_speed_bytes_per_second")]
    [InlineData("tunnel.edge.acme.certificate.expiry", "d", "Gauge", "tunnel_edge_acme_certificate_expiry_days")]
    public void Names_follow_the_OpenTelemetry_Prometheus_conventions(string name, string unit, string type, string expected) =>
        Assert.Equal(expected, PrometheusText.MetricName(name, unit, Enum.Parse<PrometheusMetricType>(type)));

    [Fact]
    public void Label_values_and_help_are_escaped()
    {
        var text = PrometheusText.Render(
        [
            new PrometheusFamily("x.y", null, "line one\nback\\slash", PrometheusMetricType.Gauge,
                [new PrometheusSample([new("tunnel.route", "a\"b\\c\nd"), new("error.type", "")], 1.5)]),
        ]);

        Assert.Equal("# HELP x_y line one\\nback\\\\slash\n# TYPE x_y gauge\nx_y{tunnel_route=\"a\\\"b\\\\c\\nd\",error_type=\"\"} 1.5\n", text);
    }

    [Fact]
    public void The_collector_sums_counters_buckets_histograms_and_drops_observed_series_that_went_away()
    {
        using var meter = new Meter("prometheus.text.tests." + Guid.NewGuid().ToString("N"));
        using var collector = new PrometheusCollector(m => ReferenceEquals(m, meter));
        var counter = meter.CreateCounter<long>("c", "{thing}", "things");
        var histogram = meter.CreateHistogram("h", "s", "durations", tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 5] });
        var observed = new List<Measurement<int>> { new(3, new KeyValuePair<string, object?>("k", "a")), new(4, new KeyValuePair<string, object?>("k", "b")) };
        meter.CreateObservableGauge("g", () => observed);

        counter.Add(2, new KeyValuePair<string, object?>("a", "1"), new KeyValuePair<string, object?>("b", true));
        counter.Add(3, new KeyValuePair<string, object?>("b", true), new KeyValuePair<string, object?>("a", "1"));
        foreach (var value in new[] { 0.5, 1, 3, 100 })
        {
            histogram.Record(value);
        }

        var text = collector.Scrape();
        Assert.Contains("c_total{a=\"1\",b=\"true\"} 5\n", text, StringComparison.Ordinal);
        Assert.Contains("h_seconds_bucket{le=\"1\"} 2\nh_seconds_bucket{le=\"2\"} 2\nh_seconds_bucket{le=\"5\"} 3\nh_seconds_bucket{le=\"+Inf\"} 4\nh_seconds_sum 104.5\nh_seconds_count 4\n", text, StringComparison.Ordinal);
        Assert.Contains("g{k=\"a\"} 3\ng{k=\"b\"} 4\n", text, StringComparison.Ordinal);

        observed.RemoveAt(0);
        text = collector.Scrape();
        Assert.DoesNotContain("g{k=\"a\"}", text, StringComparison.Ordinal);
        Assert.Contains("g{k=\"b\"} 4\n", text, StringComparison.Ordinal);
        Assert.Contains("c_total{a=\"1\",b=\"true\"} 5\n", text, StringComparison.Ordinal);
    }
    [Fact]
    public void Repeated_tags_take_the_remembered_series_and_every_series_keeps_its_own_count()
    {
        using var meter = new Meter("prometheus.text.tests." + Guid.NewGuid().ToString("N"));
        using var collector = new PrometheusCollector(m => ReferenceEquals(m, meter));
        var counter = meter.CreateCounter<long>("r", "{request}", "requests");

        // 100 series (more than the collector remembers), each added to 1 + i times, in the same and
        // in the other tag order, with tags equal by value but not by reference (fresh strings, boxes).
        for (var round = 0; round < 100; round++)
        {
            for (var i = round; i < 100; i++)
            {
                var route = string.Concat("route-", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                if (i % 2 == 0)
                {
                    counter.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("code", (object)(i % 3)));
                }
                else
                {
                    counter.Add(1, new KeyValuePair<string, object?>("code", (object)(i % 3)), new KeyValuePair<string, object?>("route", route));
                }
            }
        }

        var text = collector.Scrape();
        for (var i = 0; i < 100; i++)
        {
            // A series' labels are written in the order its first measurement gave them.
            var labels = i % 2 == 0 ? $"route=\"route-{i}\",code=\"{i % 3}\"" : $"code=\"{i % 3}\",route=\"route-{i}\"";
            Assert.Contains($"r_total{{{labels}}} {i + 1}\n", text, StringComparison.Ordinal);
        }

        Assert.Equal(100, text.Split('\n').Count(line => line.StartsWith("r_total{", StringComparison.Ordinal)));
    }
}
