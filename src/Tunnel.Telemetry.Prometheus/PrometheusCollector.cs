using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
namespace Tunnel.Telemetry.Prometheus;

/// <summary>
/// Keeps meters' metrics for a Prometheus scrape: a <see cref="MeterListener"/> on the meters it is
/// given that sums counters and up-down counters from its creation, collects observable instruments
/// at each scrape, and counts histograms into fixed buckets (the instrument's advised boundaries, else
/// OpenTelemetry's defaults). It stands in for OpenTelemetry.Exporter.Prometheus.AspNetCore.
/// </summary>
public sealed class PrometheusCollector : IDisposable
{
    // OpenTelemetry's default explicit bucket boundaries, for histograms that advise none.
    private static readonly double[] DefaultBounds = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, InstrumentState> _instruments = new();
    private readonly Lock _scrapeLock = new();

    /// <summary>The content type of <see cref="Scrape"/>'s text.</summary>
    public const string ContentType = PrometheusText.ContentType;

    /// <summary>
    /// Listens to the meters named <paramref name="meterNames"/> that <paramref name="meterFactory"/>
    /// created, or that no factory created (<c>new Meter(name)</c>). Meters of other hosts' factories
    /// in the same process are left out, so two apps in one process each serve their own.
    /// </summary>
    /// <param name="meterFactory">The host's meter factory.</param>
    /// <param name="meterNames">The meters' names, exact.</param>
    public PrometheusCollector(IMeterFactory meterFactory, params IEnumerable<string> meterNames)
        : this(Include(meterFactory, meterNames))
    {
    }

    /// <summary>Listens to the meters <paramref name="include"/> picks.</summary>
    /// <param name="include">Called once per instrument published, with its meter.</param>
    public PrometheusCollector(Func<Meter, bool> include)
    {
        ArgumentNullException.ThrowIfNull(include);
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (include(instrument.Meter))
            {
                var state = _instruments.GetOrAdd(instrument, i => new InstrumentState(i));
                listener.EnableMeasurementEvents(instrument, state);
            }
        };
        _listener.MeasurementsCompleted = (instrument, _) => _instruments.TryRemove(instrument, out InstrumentState? _);
        _listener.SetMeasurementEventCallback<byte>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<short>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<float>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<decimal>((_, value, tags, state) => ((InstrumentState)state!).Record((double)value, tags));
        _listener.Start();
    }

    /// <summary>Collects the observable instruments and returns every family, ordered by name.</summary>
    internal IReadOnlyList<PrometheusFamily> Collect()
    {
        lock (_scrapeLock)
        {
            // Observable instruments report whole values at each collection; a series they no longer
            // report (a connector that left) must go rather than keep its last value.
            foreach (var state in _instruments.Values.Where(s => s.Instrument.IsObservable))
            {
                state.Series.Clear();
            }

            _listener.RecordObservableInstruments();
            return [.. _instruments.Values.OrderBy(s => s.Instrument.Name, StringComparer.Ordinal).Select(s => s.ToFamily())];
        }
    }

    /// <summary>Collects and renders every series in the text exposition format 0.0.4.</summary>
    /// <returns>The text, for a response of type <see cref="ContentType"/>.</returns>
    public string Scrape() => PrometheusText.Render(Collect());

    /// <summary>Stops listening.</summary>
    public void Dispose() => _listener.Dispose();

    private static Func<Meter, bool> Include(IMeterFactory meterFactory, IEnumerable<string> meterNames)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(meterNames);
        var names = meterNames.ToHashSet(StringComparer.Ordinal);
        return meter => names.Contains(meter.Name) && (meter.Scope is null || ReferenceEquals(meter.Scope, meterFactory));
    }

    private sealed class InstrumentState
    {
        private readonly bool _sums;

        public InstrumentState(Instrument instrument)
        {
            Instrument = instrument;
            var kind = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : instrument.GetType();
            if (kind == typeof(Histogram<>))
            {
                Type = PrometheusMetricType.Histogram;
                Bounds = AdvisedBounds(instrument) ?? DefaultBounds;
            }
            else
            {
                Type = kind == typeof(Counter<>) || kind == typeof(ObservableCounter<>) ? PrometheusMetricType.Counter : PrometheusMetricType.Gauge;
            }

            // Synchronous counters report increments; observable instruments and gauges report values.
            _sums = kind == typeof(Counter<>) || kind == typeof(UpDownCounter<>);
        }

        public Instrument Instrument { get; }

        public PrometheusMetricType Type { get; }

        public double[]? Bounds { get; }

        public ConcurrentDictionary<LabelKey, SeriesState> Series { get; } = new();

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            // The hot path: a measurement with the same tags as one seen before (in the same order)
            // finds its series by comparing the tags as given, without formatting or allocating.
            var cache = Volatile.Read(ref _recent);
            foreach (var entry in cache)
            {
                if (entry.Matches(tags))
                {
                    entry.Series.Record(value, _sums, Bounds);
                    return;
                }
            }

            RecordSlow(value, tags, cache);
        }

        private void RecordSlow(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, RecentSeries[] cache)
        {
            var labels = new KeyValuePair<string, string>[tags.Length];
            for (var i = 0; i < tags.Length; i++)
            {
                labels[i] = new(tags[i].Key, Format(tags[i].Value));
            }

            var series = Series.GetOrAdd(new LabelKey(labels), static (_, state) => new SeriesState(state.labels, state.buckets), (labels, buckets: Bounds?.Length + 1));
            series.Record(value, _sums, Bounds);

            // Remember these tags for the hot path, up to a bound (an instrument with many series
            // takes the slow path for the rest). Observable instruments' series are rebuilt at every
            // scrape, so only synchronous instruments are remembered.
            if (!Instrument.IsObservable && cache.Length < RecentSeriesLimit)
            {
                var entry = new RecentSeries(tags.ToArray(), series);
                Interlocked.CompareExchange(ref _recent, [.. cache, entry], cache);
            }
        }

        // The series of synchronous measurements seen lately, by their tags as given; replaced whole.
        private RecentSeries[] _recent = [];

        private const int RecentSeriesLimit = 64;

        public PrometheusFamily ToFamily() => new(
            Instrument.Name,
            Instrument.Unit,
            Instrument.Description,
            Type,
            [.. Series.Values.Select(s => s.ToSample(Bounds)).OrderBy(s => string.Join(",", s.Labels), StringComparer.Ordinal)]);

        private static double[]? AdvisedBounds(Instrument instrument) => instrument switch
        {
            Histogram<double> h => h.Advice?.HistogramBucketBoundaries?.ToArray(),
            Histogram<float> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            _ => null,
        };

        private static string Format(object? value) => value switch
        {
            null => "",
            bool b => b ? "true" : "false",
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
    }

    private sealed class SeriesState(KeyValuePair<string, string>[] labels, int? buckets)
    {
        private readonly Lock _lock = new();
        private readonly long[]? _buckets = buckets is { } n ? new long[n] : null;
        private double _value;
        private double _sum;
        private long _count;

        public void Record(double value, bool sums, double[]? bounds)
        {
            lock (_lock)
            {
                if (_buckets is not null && bounds is not null)
                {
                    // A bucket counts values up to and including its bound (Prometheus' le).
                    var index = Array.BinarySearch(bounds, value);
                    _buckets[index >= 0 ? index : ~index]++;
                    _sum += value;
                    _count++;
                }
                else
                {
                    _value = sums ? _value + value : value;
                }
            }
        }

        public PrometheusSample ToSample(double[]? bounds)
        {
            lock (_lock)
            {
                return new PrometheusSample(labels, _value, bounds, _buckets?.ToArray(), _sum, _count);
            }
        }
    }

    /// <summary>Tags exactly as one measurement gave them, and the series they map to.</summary>
    private sealed class RecentSeries(KeyValuePair<string, object?>[] tags, SeriesState series)
    {
        public SeriesState Series { get; } = series;

        public bool Matches(ReadOnlySpan<KeyValuePair<string, object?>> other)
        {
            if (other.Length != tags.Length)
            {
                return false;
            }

            for (var i = 0; i < tags.Length; i++)
            {
                if (!string.Equals(tags[i].Key, other[i].Key, StringComparison.Ordinal) || !Equals(tags[i].Value, other[i].Value))
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>A series' identity: its labels in name order, whatever order they came in.</summary>
    private sealed class LabelKey : IEquatable<LabelKey>
    {
        private readonly KeyValuePair<string, string>[] _sorted;
        private readonly int _hash;

        public LabelKey(KeyValuePair<string, string>[] labels)
        {
            _sorted = [.. labels.OrderBy(l => l.Key, StringComparer.Ordinal)];
            var hash = new HashCode();
            foreach (var (key, value) in _sorted)
            {
                hash.Add(key, StringComparer.Ordinal);
                hash.Add(value, StringComparer.Ordinal);
            }

            _hash = hash.ToHashCode();
        }

        public bool Equals(LabelKey? other)
        {
            if (other is null || other._sorted.Length != _sorted.Length)
            {
                return false;
            }

            for (var i = 0; i < _sorted.Length; i++)
            {
                if (!string.Equals(_sorted[i].Key, other._sorted[i].Key, StringComparison.Ordinal) || !string.Equals(_sorted[i].Value, other._sorted[i].Value, StringComparison.Ordinal))
                {
                    return false;
                }
            }

            return true;
        }

        public override bool Equals(object? obj) => Equals(obj as LabelKey);

        public override int GetHashCode() => _hash;
    }
}
