namespace Tunnel.Faults.Infrastructure;

/// <summary>Samples a process's resident memory every 100 ms from <c>/proc</c> while an attack runs; keeps the first reading and the peak.</summary>
public sealed class PeakMemory : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task<long> _peak;

    private PeakMemory(int pid)
    {
        Before = ProcessStats.Read(pid).WorkingSet;
        _peak = Task.Run(async () =>
        {
            var peak = Before;
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    peak = Math.Max(peak, ProcessStats.Read(pid).WorkingSet);
                    await Task.Delay(100, _stop.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException)
                {
                    // Stopped, or the process is gone (the caller sees that for itself).
                }
            }

            return peak;
        });
    }

    /// <summary>Resident bytes when the watch began.</summary>
    public long Before { get; }

    public static PeakMemory Watch(int pid) => new(pid);

    /// <summary>Stops sampling; returns the most the process held above <see cref="Before"/>.</summary>
    public async Task<long> StopAsync()
    {
        await _stop.CancelAsync();
        return await _peak - Before;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _peak;
        _stop.Dispose();
    }
}
