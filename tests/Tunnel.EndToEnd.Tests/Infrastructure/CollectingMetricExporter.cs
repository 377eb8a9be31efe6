using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A small in-memory OpenTelemetry metric exporter: keeps the latest value of every metric point,
/// keyed by metric name and its attributes, so a test can read what a dashboard would show.
/// </summary>
public sealed class CollectingMetricExporter : BaseExporter<Metric>
{
    private volatile Dictionary<(string Name, string Tags), double> _values = [];

    public override ExportResult Export(in Batch<Metric> batch)
    {
        // One snapshot per collection. Two meters of the same name (two hosts in one test process, one
        // of them just stopped) each bring their own stream: their points are added, not overwritten.
        var values = new Dictionary<(string Name, string Tags), double>();
        foreach (var metric in batch)
        {
            foreach (ref readonly var point in metric.GetMetricPoints())
            {
                var tags = new List<string>();
                foreach (var tag in point.Tags)
                {
                    tags.Add($"{tag.Key}={tag.Value}");
                }

                tags.Sort(StringComparer.Ordinal);
                double value = metric.MetricType switch
                {
                    MetricType.LongSum or MetricType.LongSumNonMonotonic => point.GetSumLong(),
                    MetricType.DoubleSum or MetricType.DoubleSumNonMonotonic => point.GetSumDouble(),
                    MetricType.LongGauge => point.GetGaugeLastValueLong(),
                    MetricType.DoubleGauge => point.GetGaugeLastValueDouble(),
                    MetricType.Histogram => point.GetHistogramCount(),
                    _ => double.NaN,
                };
                var key = (metric.Name, string.Join(",", tags));
                values[key] = values.GetValueOrDefault(key) + value;
            }
        }

        _values = values;
        return ExportResult.Success;
    }

    /// <summary>The sum over every point of a metric whose attributes include all of <paramref name="tags"/>.</summary>
    public double Sum(string name, params string[] tags) =>
        _values.Where(v => v.Key.Name == name && tags.All(t => v.Key.Tags.Split(',').Contains(t))).Sum(v => v.Value);

    public string Dump() => string.Join("\n", _values.OrderBy(v => v.Key.Name).Select(v => $"{v.Key.Name} {{{v.Key.Tags}}} = {v.Value}"));
}
