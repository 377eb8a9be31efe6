using System.Globalization;
using System.Text;

namespace Tunnel.Telemetry.Prometheus;

/// <summary>How a metric family is exposed.</summary>
internal enum PrometheusMetricType
{
    Counter,
    Gauge,
    Histogram,
}

/// <summary>One series of a family: its labels, and its value or histogram.</summary>
/// <param name="Labels">Attribute names (OpenTelemetry style) and values, in the order they render.</param>
/// <param name="Value">The counter's or gauge's value; for a histogram, unused.</param>
/// <param name="Bounds">The histogram's bucket upper bounds, ascending, without +Inf.</param>
/// <param name="BucketCounts">Counts per bucket (not cumulative), one more than <paramref name="Bounds"/> (the +Inf bucket).</param>
/// <param name="Sum">The histogram's sum.</param>
/// <param name="Count">The histogram's count.</param>
internal sealed record PrometheusSample(
    IReadOnlyList<KeyValuePair<string, string>> Labels,
    double Value,
    IReadOnlyList<double>? Bounds = null,
    IReadOnlyList<long>? BucketCounts = null,
    double Sum = 0,
    long Count = 0);

/// <summary>One instrument's series.</summary>
/// <param name="Name">The instrument's name (OpenTelemetry style, dots).</param>
/// <param name="Unit">Its UCUM unit, or <c>null</c>.</param>
/// <param name="Description">Its description, or <c>null</c>.</param>
/// <param name="Type">How it is exposed.</param>
/// <param name="Samples">Its series.</param>
internal sealed record PrometheusFamily(string Name, string? Unit, string? Description, PrometheusMetricType Type, IReadOnlyList<PrometheusSample> Samples);

/// <summary>
/// Renders metric families in the Prometheus text exposition format 0.0.4, with the names the
/// OpenTelemetry Prometheus exporter gives: dots and other invalid characters become underscores, the
/// unit becomes a suffix (<c>_seconds</c>, <c>_bytes</c>; <c>{request}</c>-style units none), counters
/// end in <c>_total</c>, histograms are <c>_bucket{le=...}</c>, <c>_sum</c> and <c>_count</c>.
/// </summary>
internal static class PrometheusText
{
    /// <summary>The response's content type.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Render(IEnumerable<PrometheusFamily> families)
    {
        var text = new StringBuilder();
        foreach (var family in families)
        {
            if (family.Samples.Count == 0)
            {
                continue;
            }

            var name = MetricName(family.Name, family.Unit, family.Type);
            if (!string.IsNullOrEmpty(family.Description))
            {
                text.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(family.Description)).Append('\n');
            }

            text.Append("# TYPE ").Append(name).Append(' ').Append(family.Type switch
            {
                PrometheusMetricType.Counter => "counter",
                PrometheusMetricType.Histogram => "histogram",
                _ => "gauge",
            }).Append('\n');

            foreach (var sample in family.Samples)
            {
                if (family.Type != PrometheusMetricType.Histogram)
                {
                    AppendLine(text, name, sample.Labels, null, sample.Value);
                    continue;
                }

                var bounds = sample.Bounds ?? [];
                var counts = sample.BucketCounts ?? [];
                long cumulative = 0;
                for (var i = 0; i <= bounds.Count; i++)
                {
                    cumulative += i < counts.Count ? counts[i] : 0;
                    AppendLine(text, name + "_bucket", sample.Labels, i < bounds.Count ? FormatValue(bounds[i]) : "+Inf", cumulative);
                }

                AppendLine(text, name + "_sum", sample.Labels, null, sample.Sum);
                AppendLine(text, name + "_count", sample.Labels, null, sample.Count);
            }
        }

        return text.ToString();
    }

    /// <summary>The Prometheus metric name for an instrument.</summary>
    public static string MetricName(string name, string? unit, PrometheusMetricType type)
    {
        var metric = Sanitize(name);
        var suffix = UnitSuffix(unit, type);
        if (suffix.Length > 0 && !metric.EndsWith("_" + suffix, StringComparison.Ordinal))
        {
            metric += "_" + suffix;
        }

        if (type == PrometheusMetricType.Counter && !metric.EndsWith("_total", StringComparison.Ordinal))
        {
            metric += "_total";
        }

        return metric;
    }

    /// <summary>A valid Prometheus label name for an attribute name.</summary>
    public static string LabelName(string name) => Sanitize(name.Replace(':', '_'));

    /// <summary>A label value with backslash, double quote and line feed escaped.</summary>
    public static string EscapeLabelValue(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>A sample value: shortest round-trip form, <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>.</summary>
    public static string FormatValue(double value) =>
        double.IsNaN(value) ? "NaN"
        : double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : value.ToString(CultureInfo.InvariantCulture);

    private static string EscapeHelp(string help) =>
        help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static void AppendLine(StringBuilder text, string name, IReadOnlyList<KeyValuePair<string, string>> labels, string? le, double value)
    {
        text.Append(name);
        if (labels.Count > 0 || le is not null)
        {
            text.Append('{');
            var first = true;
            foreach (var (label, labelValue) in labels)
            {
                if (!first)
                {
                    text.Append(',');
                }

                first = false;
                text.Append(LabelName(label)).Append("=\"").Append(EscapeLabelValue(labelValue)).Append('"');
            }

            if (le is not null)
            {
                text.Append(first ? "" : ",").Append("le=\"").Append(le).Append('"');
            }

            text.Append('}');
        }

        text.Append(' ').Append(FormatValue(value)).Append('\n');
    }

    private static string UnitSuffix(string? unit, PrometheusMetricType type)
    {
        if (string.IsNullOrEmpty(unit))
        {
            return "";
        }

        // Annotations in braces ({request}) name what is counted, not a unit: they add nothing.
        var bare = new StringBuilder();
        var depth = 0;
        foreach (var c in unit)
        {
            depth += c == '{' ? 1 : c == '}' ? -1 : 0;
            if (depth == 0 && c != '}')
            {
                bare.Append(c);
            }
        }

        return bare.ToString() switch
        {
            "" => "",
            "1" => type == PrometheusMetricType.Gauge ? "ratio" : "",
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "min" => "minutes",
            "h" => "hours",
            "d" => "days",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "By/s" => "bytes_per_second",
            "%" => "percent",
            var other => Sanitize(other.Replace("/", "_per_", StringComparison.Ordinal)).Trim('_'),
        };
    }

    private static string Sanitize(string name)
    {
        var result = new StringBuilder(name.Length + 1);
        foreach (var c in name)
        {
            var valid = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or ':';
            var next = valid ? c : '_';
            if (next == '_' && result.Length > 0 && result[^1] == '_')
            {
                continue;
            }

            result.Append(next);
        }

        if (result.Length == 0 || char.IsAsciiDigit(result[0]))
        {
            result.Insert(0, '_');
        }

        return result.ToString();
    }
}
