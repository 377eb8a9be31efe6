using Tunnel.Protocol;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Whether the app is ready to take requests, as its readiness checks last said, and a signal for each
/// change so every tunnel's anchor tells its edge at once. Ready until a check says otherwise. Thread-safe.
/// </summary>
internal sealed class TunnelReadiness
{
    private readonly Lock _lock = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _isReady = true;

    /// <summary>Whether the app takes requests.</summary>
    public bool IsReady => _isReady;

    /// <summary>The anchor beat that says <see cref="IsReady"/>.</summary>
    public byte Beat => _isReady ? AnchorBeat.Ready : AnchorBeat.NotReady;

    /// <summary>Completes at the next change of <see cref="IsReady"/>.</summary>
    public Task Changed
    {
        get
        {
            lock (_lock)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>Sets the readiness; returns whether it changed.</summary>
    public bool Set(bool ready)
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (_isReady == ready)
            {
                return false;
            }

            _isReady = ready;
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
        return true;
    }
}
