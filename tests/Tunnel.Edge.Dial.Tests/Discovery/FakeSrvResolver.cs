using System.Collections.Concurrent;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests.Discovery;

/// <summary>An SRV resolver that answers what the test queued, optionally after a gate opens.</summary>
internal sealed class FakeSrvResolver : ISrvResolver
{
    private readonly ConcurrentQueue<Func<SrvLookupResult>> _answers = new();
    private int _calls;

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>When set, lookups wait for it (and for cancellation) before answering.</summary>
    public TaskCompletionSource? Gate { get; set; }

    public FakeSrvResolver Answer(TimeSpan ttl, params SrvTarget[] targets)
    {
        _answers.Enqueue(() => new SrvLookupResult(targets, ttl));
        return this;
    }

    public FakeSrvResolver Fail(Exception error)
    {
        _answers.Enqueue(() => throw error);
        return this;
    }

    public async Task<SrvLookupResult> ResolveSrvAsync(string name, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        if (Gate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        return _answers.TryDequeue(out var answer)
            ? answer()
            : throw new InvalidOperationException("The test queued no more answers.");
    }
}
