using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Tunnel.Edge.Hosting;

namespace Tunnel.Edge.Tests.Hosting;

/// <summary>The throttle on log events a visitor can repeat at will (<see cref="PeerRepeatedLogThrottle"/>).</summary>
public class PeerRepeatedLogThrottleTests
{
    private const string KestrelHttp2 = "Microsoft.AspNetCore.Server.Kestrel.Http2";

    [Fact]
    public void A_burst_of_Kestrels_output_queue_aborts_logs_one_warning_per_window_with_the_count_held_back()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var capture = new Capture();
        using var throttle = new PeerRepeatedLogThrottle(capture, time);
        var kestrel = throttle.CreateLogger(KestrelHttp2);

        for (var i = 0; i < 140; i++)
        {
            kestrel.Log(LogLevel.Critical, new EventId(60, "Http2QueueOperationsExceeded"), "exceeded the output operations maximum queue size.", null, (s, _) => s);
        }

        var first = Assert.Single(capture.Lines);
        Assert.Equal(LogLevel.Warning, first.Level);
        Assert.Contains("at most once per 10 s", first.Message, StringComparison.Ordinal);

        time.Advance(PeerRepeatedLogThrottle.Window);
        kestrel.Log(LogLevel.Critical, new EventId(60), "exceeded the output operations maximum queue size.", null, (s, _) => s);
        Assert.Equal(2, capture.Lines.Count);
        Assert.Contains("139 more like it", capture.Lines[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_other_event_passes_untouched()
    {
        var capture = new Capture();
        using var throttle = new PeerRepeatedLogThrottle(capture, new FakeTimeProvider());
        for (var i = 0; i < 3; i++)
        {
            throttle.CreateLogger(KestrelHttp2).Log(LogLevel.Critical, new EventId(61), "another Kestrel event", null, (s, _) => s);
            throttle.CreateLogger("Tunnel.Edge.Visitors").Log(LogLevel.Critical, new EventId(60), "our own event 60", null, (s, _) => s);
        }

        Assert.Equal(6, capture.Lines.Count);
        Assert.All(capture.Lines, l => Assert.Equal(LogLevel.Critical, l.Level));
    }

    private sealed class Capture : ILoggerProvider
    {
        public List<(LogLevel Level, string Message)> Lines { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(Capture capture) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                capture.Lines.Add((logLevel, formatter(state, exception)));
        }
    }
}
