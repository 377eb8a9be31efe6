using System.Threading.Tasks.Sources;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// A reusable wait for one waiter at a time, armed and set under its owner's lock, so a stream or the
/// writer loop can wait again and again without a task or a Channel item per wait. Continuations run
/// on the thread pool, so setting it under a lock never runs the waiter there.
/// </summary>
internal sealed class AsyncSignal(object owner) : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private bool _armed;
    private CancellationToken _token;
    private CancellationTokenRegistration _registration;

    /// <summary>Whether a waiter is waiting.</summary>
    public bool IsArmed => _armed;

    /// <summary>Starts a wait. Call under the owner's lock, after finding that the condition does not hold.</summary>
    public ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        _core.Reset();
        _armed = true;
        _token = cancellationToken;
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(static state => ((AsyncSignal)state!).OnCanceled(), this);
        }

        return new ValueTask(this, _core.Version);
    }

    /// <summary>Wakes the waiter, if any. Call under the owner's lock.</summary>
    public void Set()
    {
        if (_armed)
        {
            _armed = false;
            _core.SetResult(true);
        }
    }

    /// <summary>Fails the waiter, if any. Call under the owner's lock.</summary>
    public void Fail(Exception error)
    {
        if (_armed)
        {
            _armed = false;
            _core.SetException(error);
        }
    }

    private void OnCanceled()
    {
        lock (owner)
        {
            Fail(new OperationCanceledException(_token));
        }
    }

    void IValueTaskSource.GetResult(short token)
    {
        _registration.Dispose();
        _registration = default;
        _core.GetResult(token);
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
