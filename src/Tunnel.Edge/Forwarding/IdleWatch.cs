namespace Tunnel.Edge.Forwarding;

/// <summary>
/// Cancels a tunnelled WebSocket that passed no byte either way for its idle timeout. The pumps mark
/// each read; a timer looks four times per timeout, so the socket closes between one and one and a
/// quarter timeouts after its last byte, at the cost of a timestamp per read rather than a timer
/// change per read.
/// </summary>
internal sealed class IdleWatch : IDisposable
{
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop;
    private readonly ITimer? _timer;
    private long _lastActivity;
    private int _expired;

    public IdleWatch(TimeSpan timeout, TimeProvider time, CancellationTokenSource stop)
    {
        Timeout = timeout;
        _time = time;
        _stop = stop;
        _lastActivity = time.GetTimestamp();
        if (timeout != System.Threading.Timeout.InfiniteTimeSpan)
        {
            var period = timeout / 4;
            _timer = time.CreateTimer(static state => ((IdleWatch)state!).Check(), this, period, period);
        }
    }

    public TimeSpan Timeout { get; }

    /// <summary>Whether the watch (not either side) ended the exchange.</summary>
    public bool Expired => Volatile.Read(ref _expired) == 1;

    /// <summary>Bytes passed: the idle clock starts again.</summary>
    public void Touch() => Volatile.Write(ref _lastActivity, _time.GetTimestamp());

    public void Dispose() => _timer?.Dispose();

    private void Check()
    {
        if (_time.GetElapsedTime(Volatile.Read(ref _lastActivity)) < Timeout || Interlocked.Exchange(ref _expired, 1) == 1)
        {
            return;
        }

        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The exchange ended on its own while this looked.
        }
    }
}
