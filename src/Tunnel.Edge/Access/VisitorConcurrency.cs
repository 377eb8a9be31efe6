namespace Tunnel.Edge.Access;

/// <summary>
/// Requests in flight per visitor address and hostname, with a bounded wait for a place: a burst
/// above the cap (a page's images over one HTTP/2 connection) waits a moment for the visitor's own
/// requests to end, while requests that stay open (WebSockets, event streams, slow uploads) cannot
/// take more than the cap of a site's tunnel streams. An entry exists only while its visitor has a
/// request in flight or waiting, so addresses and Host headers cannot grow the table.
/// </summary>
internal sealed class VisitorConcurrency(TimeProvider time)
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>
    /// Counts a request for <paramref name="key"/> once fewer than <paramref name="limit"/> are in flight,
    /// waiting at most <paramref name="wait"/> for one to end.
    /// </summary>
    /// <returns>Whether the request may go on (then call <see cref="Exit"/> when it ends), and how many were in flight.</returns>
    public async ValueTask<(bool Entered, int InFlight)> EnterAsync(string key, int limit, TimeSpan wait, CancellationToken cancellationToken)
    {
        TaskCompletionSource<bool> waiter;
        int inFlight;
        lock (_lock)
        {
            if (!_entries.TryGetValue(key, out var entry))
            {
                _entries[key] = new Entry { InFlight = 1 };
                return (true, 1);
            }

            // Waiters that gave up leave from the head (they all wait as long), so a visitor that keeps
            // its cap busy and asks again and again holds at most one wait's worth of them.
            while (entry.Waiters.TryPeek(out var first) && first.Task.IsCompleted)
            {
                entry.Waiters.Dequeue();
            }

            inFlight = entry.InFlight;
            if (entry.InFlight < limit && entry.Waiters.Count == 0)
            {
                entry.InFlight++;
                return (true, entry.InFlight);
            }

            waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            entry.Waiters.Enqueue(waiter);
        }

        // A waiter woken with true owns the place the ending request left; one that gave up first stays
        // in the queue, and the next ending request passes over it.
        using (cancellationToken.UnsafeRegister(static state => ((TaskCompletionSource<bool>)state!).TrySetResult(false), waiter))
        using (time.CreateTimer(static state => ((TaskCompletionSource<bool>)state!).TrySetResult(false), waiter, wait, Timeout.InfiniteTimeSpan))
        {
            return (await waiter.Task.ConfigureAwait(false), inFlight);
        }
    }

    /// <summary>A request counted by <see cref="EnterAsync"/> ended: its place goes to the first waiter, if any.</summary>
    public void Exit(string key)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(key, out var entry))
            {
                return;
            }

            while (entry.Waiters.TryDequeue(out var waiter))
            {
                if (waiter.TrySetResult(true))
                {
                    return;
                }
            }

            if (--entry.InFlight <= 0)
            {
                _entries.Remove(key);
            }
        }
    }

    private sealed class Entry
    {
        public int InFlight;

        public Queue<TaskCompletionSource<bool>> Waiters { get; } = new();
    }
}
