using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Hosting;

/// <summary>
/// Wraps the edge's log providers so that a log event a visitor can repeat at will passes at most once per
/// <see cref="Window"/>, at Warning, with the count of those held back since the last one. Kestrel logs
/// <c>Http2QueueOperationsExceeded</c> (event 60, Critical) once per stream a flooding HTTP/2 visitor keeps
/// opening after its connection's output queue is full: about 140 lines for one connection, so a visitor
/// could fill the edge's log (and disk) from a handful of sockets. Every other event passes untouched.
/// </summary>
internal sealed class PeerRepeatedLogThrottle : ILoggerProvider, ISupportExternalScope
{
    /// <summary>How often a throttled event passes.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    // The events a peer controls the count of: (category, event id).
    // The sign-in's 470 and 471: every visitor request a misconfigured peer edge forwards (Access.SignIn.PeerAssertions).
    private static readonly (string Category, int EventId)[] Throttled =
        [("Microsoft.AspNetCore.Server.Kestrel.Http2", 60), ("Tunnel.Edge.Access.SignIn", 470), ("Tunnel.Edge.Access.SignIn", 471)];

    private readonly ILoggerProvider _inner;
    private readonly TimeProvider _time;
    private readonly Dictionary<(string, int), Gate> _gates = [];

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    public PeerRepeatedLogThrottle(ILoggerProvider inner, TimeProvider time)
    {
        _inner = inner;
        _time = time;
        foreach (var throttled in Throttled)
        {
            _gates[throttled] = new Gate();
        }
    }

    /// <summary>Wraps every log provider registered in <paramref name="services"/> so far.</summary>
    public static void WrapProviders(IServiceCollection services)
    {
        for (var i = 0; i < services.Count; i++)
        {
            var descriptor = services[i];
            if (descriptor.ServiceType != typeof(ILoggerProvider) || descriptor.IsKeyedService)
            {
                continue;
            }

            services[i] = ServiceDescriptor.Singleton<ILoggerProvider>(sp => new PeerRepeatedLogThrottle(Create(sp, descriptor), sp.GetService<TimeProvider>() ?? TimeProvider.System));
        }
    }

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName)
    {
        var inner = _inner.CreateLogger(categoryName);
        var gates = _gates.Where(g => g.Key.Item1 == categoryName).ToDictionary(g => g.Key.Item2, g => g.Value);
        return gates.Count == 0 ? inner : new ThrottledLogger(inner, gates, _time);
    }

    /// <inheritdoc />
    public void SetScopeProvider(IExternalScopeProvider scopeProvider)
    {
        if (_inner is ISupportExternalScope scoped)
        {
            scoped.SetScopeProvider(scopeProvider);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _inner.Dispose();

    private static ILoggerProvider Create(IServiceProvider services, ServiceDescriptor descriptor) =>
        descriptor.ImplementationInstance as ILoggerProvider
        ?? descriptor.ImplementationFactory?.Invoke(services) as ILoggerProvider
        ?? (ILoggerProvider)ActivatorUtilities.CreateInstance(services, descriptor.ImplementationType!);

    /// <summary>When a throttled event last passed, and how many were held back since.</summary>
    private sealed class Gate
    {
        public DateTimeOffset LastPassed { get; set; } = DateTimeOffset.MinValue;

        public long HeldBack { get; set; }
    }

    private sealed class ThrottledLogger(ILogger inner, Dictionary<int, Gate> gates, TimeProvider time) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!gates.TryGetValue(eventId.Id, out var gate))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }

            long heldBack;
            lock (gate)
            {
                var now = time.GetUtcNow();
                if (now - gate.LastPassed < Window)
                {
                    gate.HeldBack++;
                    return;
                }

                heldBack = gate.HeldBack;
                gate.HeldBack = 0;
                gate.LastPassed = now;
            }

            var note = heldBack == 0
                ? $" (a visitor can repeat this at will: logged at most once per {Window.TotalSeconds:0} s)"
                : $" ({heldBack} more like it in the last {Window.TotalSeconds:0} s or more were not logged)";
            inner.Log(LogLevel.Warning, eventId, state, exception, (s, e) => formatter(s, e) + note);
        }
    }
}
