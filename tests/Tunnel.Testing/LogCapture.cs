using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Tunnel.Testing;

/// <summary>Keeps every log line of a host so a test can look for what an operator would read.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyCollection<Entry> Entries => _entries.ToArray();

    public sealed record Entry(string Category, LogLevel Level, EventId EventId, string Message, DateTime At);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                owner._entries.Enqueue(new Entry(category, logLevel, eventId, formatter(state, exception), DateTime.UtcNow));
            }
        }
    }
}
