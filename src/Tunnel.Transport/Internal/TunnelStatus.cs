namespace Tunnel.Transport.Internal;

/// <summary>Keeps <see cref="ITunnelStatus"/> from the event stream. Thread-safe.</summary>
internal sealed class TunnelStatus(TimeProvider time, TunnelReadiness? readiness = null) : ITunnelStatus
{
    private const int RecentEventCapacity = 100;

    private readonly Lock _lock = new();
    private readonly Queue<TunnelConnectionEvent> _recent = new();
    private TunnelSlotStatus[] _slots = [];
    private TunnelConnectionEvent? _lastError;
    private TunnelCredentialStatus? _credential;
    private int _openVisitorConnections;

    public int OpenVisitorConnections => Volatile.Read(ref _openVisitorConnections);

    /// <summary>A carried visitor connection was handed to Kestrel (+1) or ended (-1).</summary>
    public void VisitorConnectionsChanged(int delta) => Interlocked.Add(ref _openVisitorConnections, delta);

    public TunnelCredentialStatus? Credential
    {
        get
        {
            lock (_lock)
            {
                return _credential;
            }
        }
    }

    /// <summary>Replaces the credential status with what <paramref name="update"/> makes of it.</summary>
    public void UpdateCredential(Func<TunnelCredentialStatus?, TunnelCredentialStatus?> update)
    {
        lock (_lock)
        {
            _credential = update(_credential);
        }
    }

    public bool IsReady => readiness?.IsReady ?? true;

    public int DesiredConnections
    {
        get
        {
            lock (_lock)
            {
                return _slots.Length;
            }
        }
    }

    public int RegisteredConnections
    {
        get
        {
            lock (_lock)
            {
                return _slots.Count(s => s.IsRegistered);
            }
        }
    }

    public IReadOnlyList<TunnelSlotStatus> Slots
    {
        get
        {
            lock (_lock)
            {
                return _slots.ToArray();
            }
        }
    }

    public TunnelConnectionEvent? LastError
    {
        get
        {
            lock (_lock)
            {
                return _lastError;
            }
        }
    }

    public IReadOnlyList<TunnelConnectionEvent> RecentEvents
    {
        get
        {
            lock (_lock)
            {
                return _recent.ToArray();
            }
        }
    }

    public void Start(int slots)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            _slots = Enumerable.Range(0, slots).Select(i => new TunnelSlotStatus(i, false, null, null, null, null, now, null)).ToArray();
        }
    }

    public void Stop()
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            _slots = _slots.Select(s => s with { IsRegistered = false, Since = now }).ToArray();
        }
    }

    public void Apply(TunnelConnectionEvent e)
    {
        lock (_lock)
        {
            _recent.Enqueue(e);
            while (_recent.Count > RecentEventCapacity)
            {
                _recent.Dequeue();
            }

            if (e.IsFailure)
            {
                _lastError = e;
            }

            if ((uint)e.ConnectionIndex >= (uint)_slots.Length)
            {
                return;
            }

            var slot = _slots[e.ConnectionIndex];
            _slots[e.ConnectionIndex] = e.Kind switch
            {
                TunnelConnectionEventKind.Registered => new TunnelSlotStatus(e.ConnectionIndex, true, e.EdgeName, e.EdgeRegion, e.EdgeAddress, e.TunnelConnectionId, e.Timestamp, null) { CredentialId = e.CredentialId },
                TunnelConnectionEventKind.Disconnected or TunnelConnectionEventKind.Dropped =>
                    slot with { IsRegistered = false, Since = e.Timestamp, LastError = e.IsFailure ? e : slot.LastError },

                // Moving, renewing, rebalancing: the old connection still serves until the replacement
                // is registered (and a failed move leaves it serving, with the failure as its last error).
                TunnelConnectionEventKind.Moving or TunnelConnectionEventKind.Renewing or TunnelConnectionEventKind.Rebalancing => slot,
                _ => slot with { LastError = e },
            };
        }
    }
}
