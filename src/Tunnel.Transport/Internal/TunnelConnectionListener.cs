using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Kestrel's listener for the tunnel endpoint. It owns <see cref="TunnelOptions.HaConnections"/>
/// <see cref="TunnelSlot"/>s, which each dial, register and queue a connection, and the two passes that
/// span the slots: replacing connections after a credential renewal, and rebalancing over the edges.
/// <see cref="AcceptAsync"/> drains the queue; it returns <c>null</c> only once unbound and never throws,
/// because an exception would stop Kestrel's accept loop for good.
/// </summary>
internal sealed class TunnelConnectionListener : IConnectionListener
{
    // A move dials one edge once; its dial has its own timeouts. This bounds the wait for it regardless.
    private static readonly TimeSpan RebalanceMoveTimeout = TimeSpan.FromMinutes(2);

    private readonly TunnelSettings _settings;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Channel<StreamTransportConnection> _ready;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TunnelEvents _events;
    private readonly SemaphoreSlim _renewed = new(0);
    private TunnelSlot[] _slots = [];
    private int _unbound;
    private TunnelCredentialWatcher? _watcher;
    private Task _renewal = Task.CompletedTask;
    private Task _rebalance = Task.CompletedTask;

    public TunnelConnectionListener(TunnelEndPoint endPoint, TunnelSettings settings, TunnelEvents events, ILogger logger, TimeProvider time)
    {
        EndPoint = endPoint;
        _settings = settings;
        _events = events;
        _logger = logger;
        _time = time;

        // One place per slot: a slot queues at most one connection at a time.
        _ready = Channel.CreateBounded<StreamTransportConnection>(new BoundedChannelOptions(settings.HaConnections)
        {
            SingleReader = false,
            SingleWriter = false,
        });
    }

    public EndPoint EndPoint { get; }

    public void Start()
    {
        var state = _settings.Current;
        TunnelLog.Starting(_logger, _settings.HaConnections, string.Join(", ", state.Edges), string.Join(", ", state.DialOptions.Hostnames.Concat(state.DialOptions.Connections.Select(c => $"{c.Hostname} ({c.Mode.ToString().ToLowerInvariant()} connections)"))));
        _events.Status.Start(_settings.HaConnections);
        var dialer = new TunnelSlotDialer(_settings, _logger, _time);
        _slots = Enumerable.Range(0, _settings.HaConnections)
            .Select(index => new TunnelSlot(index, dialer, _events, _ready.Writer, _settings.Redial, RequestRenewalPass, _logger, _time))
            .ToArray();
        foreach (var slot in _slots)
        {
            slot.Start();
        }

        _watcher = new TunnelCredentialWatcher(_settings, _events.Status, _logger, _time, OnCredentialRenewed);
        _watcher.Start();
        _renewal = Task.Run(RenewConnectionsAsync);
        _rebalance = Task.Run(RebalanceConnectionsAsync);
    }

    private void OnCredentialRenewed(TunnelDialState state) => RequestRenewalPass();

    private void RequestRenewalPass()
    {
        try
        {
            _renewed.Release();
        }
        catch (ObjectDisposedException)
        {
            // Unbound: nothing left to renew.
        }
    }

    /// <summary>
    /// After a renewal, replaces the connections dialed with an older credential one at a time: the slot
    /// dials a replacement with the new one, and only once it is registered does the old connection
    /// close (gracefully) and the next slot begin. A new credential the edge refuses thus never takes
    /// down more than one connection's worth of dials, and the old connections keep serving meanwhile.
    /// </summary>
    private async Task RenewConnectionsAsync()
    {
        var stopping = _stopping.Token;
        try
        {
            while (true)
            {
                await _renewed.WaitAsync(stopping).ConfigureAwait(false);
                while (NextSlotToRenew() is { } renewal)
                {
                    // A newer credential meanwhile needs no restart: the slot dials with whatever is current.
                    await renewal.WaitAsync(stopping).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            TunnelLog.RenewalFault(_logger, ex);
        }
    }

    /// <summary>Asks the first slot whose connection is older than the current credential to replace it; returns when that slot next registers.</summary>
    private Task? NextSlotToRenew()
    {
        var generation = _settings.Current.Generation;
        foreach (var slot in _slots)
        {
            if (slot.RequestRenewal(generation) is { } registered)
            {
                return registered;
            }
        }

        return null;
    }

    /// <summary>
    /// Every <see cref="TunnelSettings.RebalanceInterval"/>, while every slot is registered, moves
    /// connections one at a time from the fullest edge to a usable edge with two fewer (a restarted
    /// edge, or one newly listed), until the spread is even or a move fails. Each move dials the new
    /// edge first; the old connection serves until the new one is registered.
    /// </summary>
    private async Task RebalanceConnectionsAsync()
    {
        var interval = _settings.RebalanceInterval;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, _time, stopping).ConfigureAwait(false);

                // At most one move per slot per check, each waited for before the next is planned.
                for (var moves = 0; moves < _slots.Length; moves++)
                {
                    if (_events.Status.RegisteredConnections < _settings.HaConnections)
                    {
                        break;
                    }

                    var move = await _settings.Current.Selector.PlanRebalanceAsync(stopping).ConfigureAwait(false);
                    if (move is null || RequestRebalance(move) is not { } done
                        || !await done.WaitAsync(RebalanceMoveTimeout, _time, stopping).ConfigureAwait(false))
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (EdgeDiscoveryException)
            {
                // Discovery is down: the slots report that when they dial; nothing to move meanwhile.
            }
            catch (TimeoutException)
            {
                // A move that outlasted its bound: the slot carries on by itself; check again later.
            }
            catch (Exception ex)
            {
                TunnelLog.RebalanceFault(_logger, ex);
            }
        }
    }

    /// <summary>Asks a registered slot to move; the task says whether it did. Null when the slot cannot be asked now.</summary>
    private Task<bool>? RequestRebalance(RebalanceMove move) =>
        (uint)move.SlotIndex < (uint)_slots.Length ? _slots[move.SlotIndex].RequestRebalance(move) : null;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (await _ready.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (_ready.Reader.TryRead(out var connection))
                {
                    return connection;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Kestrel cancels only when it stops accepting; null tells it we are done.
        }

        return null;
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _unbound, 1) != 0)
        {
            return;
        }

        TunnelLog.Stopping(_logger);
        _events.Status.Stop();
        _watcher?.Dispose();
        await _stopping.CancelAsync().ConfigureAwait(false);

        // Each slot's dial or wait is cancelled before the queue closes.
        var slotsStopped = _slots.Select(slot => slot.DisposeAsync().AsTask()).ToArray();
        _ready.Writer.TryComplete();
        while (_ready.Reader.TryRead(out var queued))
        {
            await queued.DisposeAsync().ConfigureAwait(false);
        }

        await Task.WhenAll(slotsStopped).ConfigureAwait(false);
        await _renewal.ConfigureAwait(false);
        await _rebalance.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        _stopping.Dispose();
        _renewed.Dispose();
    }
}
