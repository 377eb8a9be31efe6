using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Redial;

namespace Tunnel.Transport.Internal;

/// <summary>
/// One connection slot: dials and registers a tunnel connection, hands it to Kestrel, and decides what
/// comes next in one place, a loop over one inbox of commands.
/// </summary>
/// <remarks>
/// <code>
///            +-- dial fails: backoff (Polly), dial again ---+
///            v                                              |
///   --> Dialing ----------- registered ------------> Serving (inbox loop)
///            ^                                        |  Closed: Kestrel disposed the connection
///            |                                        |  EdgeAsksToMove: the edge drains (GOAWAY), or the anchor broke
///            +-- backoff unless it was stable --------+  Renew: dialed with an older credential
///            +-- at once, the old one serves on ------+  Rebalance: dial the less used edge once; on failure stay
/// </code>
/// Commands name the connection (or registration) they are meant for; one that arrives after the slot
/// has moved on is spent and ignored. A replacement is always registered before the connection it
/// replaces is asked to close (<see cref="RequestGracefulClose"/>), so a renewal, a move or a drain
/// never takes the slot down. Everything else the slot does not own is behind <see cref="ISlotDialer"/>.
/// </remarks>
internal sealed class TunnelSlot : IAsyncDisposable
{
    // Kestrel disposes a dead connection within milliseconds of its anchor breaking; a draining edge's
    // connection stays open. This long tells the two apart without delaying the replacement noticeably.
    internal static readonly TimeSpan BrokenAnchorGrace = TimeSpan.FromMilliseconds(200);

    private readonly int _index;
    private readonly ISlotDialer _dialer;
    private readonly TunnelEvents _events;
    private readonly ChannelWriter<StreamTransportConnection> _accepted;
    private readonly RedialBackoffOptions _redial;
    private readonly Random? _random;
    private readonly Action _renewalNeeded;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Channel<SlotCommand> _inbox = Channel.CreateUnbounded<SlotCommand>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();

    // What the renewal and the rebalancing read from other threads; guarded by _gate.
    private readonly Lock _gate = new();
    private int _generation = -1;
    private int _epoch;
    private bool _movePending;
    private TaskCompletionSource _registered = NewSignal();

    // The loop's own state: touched by the loop alone.
    private SlotServing? _serving;
    private StreamTransportConnection? _retiring;
    private SlotDial? _replacement;
    private TaskCompletionSource<bool>? _moveDone;
    private Task _run = Task.CompletedTask;
    private int _disposed;

    /// <summary>A slot that queues its connections on <paramref name="accepted"/> and calls <paramref name="renewalNeeded"/> when it registers with a replaced credential.</summary>
    public TunnelSlot(int index, ISlotDialer dialer, TunnelEvents events, ChannelWriter<StreamTransportConnection> accepted, RedialBackoffOptions redial, Action renewalNeeded, ILogger logger, TimeProvider time, Random? random = null)
    {
        _index = index;
        _dialer = dialer;
        _events = events;
        _accepted = accepted;
        _redial = redial;
        _renewalNeeded = renewalNeeded;
        _logger = logger;
        _time = time;
        _random = random;
    }

    /// <summary>The credential generation of the registered connection; -1 while the slot has none.</summary>
    public int Generation
    {
        get
        {
            lock (_gate)
            {
                return _generation;
            }
        }
    }

    public void Start() => _run = Task.Run(() => SuperviseAsync(_stopping.Token));

    /// <summary>
    /// Asks the slot to replace a connection dialed with a credential older than <paramref name="generation"/>;
    /// returns when the slot next registers, or null when it has nothing to replace.
    /// </summary>
    public Task? RequestRenewal(int generation)
    {
        lock (_gate)
        {
            if (_generation < 0 || _generation >= generation || !_inbox.Writer.TryWrite(new SlotCommand.Renew(_epoch)))
            {
                return null;
            }

            return _registered.Task;
        }
    }

    /// <summary>Asks a registered slot to move; the task says whether it did. Null when the slot cannot be asked now.</summary>
    public Task<bool>? RequestRebalance(RebalanceMove move)
    {
        lock (_gate)
        {
            var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_generation < 0 || _movePending || !_inbox.Writer.TryWrite(new SlotCommand.Rebalance(_epoch, move, done)))
            {
                return null;
            }

            _movePending = true;
            return done.Task;
        }
    }

    /// <summary>Stops the slot: a dial or a wait in progress is cancelled; Kestrel keeps the connections it accepted.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _run.ConfigureAwait(false);
        _inbox.Writer.TryComplete();
        while (_inbox.Reader.TryRead(out var left))
        {
            (left as SlotCommand.Rebalance)?.Done.TrySetResult(false);
        }

        _stopping.Dispose();
    }

    private async Task SuperviseAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await RunAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A bug, not a network failure (those are retried inside): keep the slot alive regardless.
                TunnelLog.SlotFault(_logger, _index, ex);
                try
                {
                    await Task.Delay(_redial.MaxDelay, _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>The state machine. Returns when Kestrel's queue takes no more connections.</summary>
    private async Task RunAsync(CancellationToken stopping)
    {
        var backoff = new RedialBackoff(_redial, _time, _random);
        EdgeAddress? lastEdge = null;
        var pipeline = RedialPipeline.Create(backoff, (failure, delay) => _events.Publish(TunnelEvents.Failure(_index, lastEdge, failure, delay, _time.GetUtcNow())), _time);
        _serving = null;
        _retiring = null;
        try
        {
            while (true)
            {
                // Dialing: a move's replacement is already dialed and registered at its edge.
                var dial = TakeReplacement() ?? await pipeline.ExecuteAsync(
                    token => new ValueTask<SlotDial>(_dialer.DialAsync(_index, backoff.ConsecutiveFailures, edge => lastEdge = edge, token)),
                    stopping).ConfigureAwait(false);
                if (!await RegisterAsync(dial, backoff).ConfigureAwait(false))
                {
                    return;
                }

                var (exit, move) = await ServeAsync(stopping).ConfigureAwait(false);
                if (await LeaveAsync(exit, move, backoff, stopping).ConfigureAwait(false) is { } delay)
                {
                    TunnelLog.RedialDelayed(_logger, _index, delay.TotalMilliseconds);
                    await Task.Delay(delay, _time, stopping).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            // Whoever waits for a move this slot took on hears it did not happen.
            _moveDone?.TrySetResult(false);
            _moveDone = null;
            if (TakeReplacement() is { } unused)
            {
                await unused.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Publishes the registration and queues the connection for Kestrel; false when the queue takes no more.</summary>
    private async Task<bool> RegisterAsync(SlotDial dial, RedialBackoff backoff)
    {
        var registration = dial.Registration;
        dial.Selector.ReportConnected(_index, dial.Edge, registration.Region, dial.Timings.Tcp);
        backoff.OnConnected();
        var registeredAt = _time.GetUtcNow();
        var registered = new TunnelConnectionEvent(TunnelConnectionEventKind.Registered, _index, registeredAt)
        {
            EdgeAddress = dial.Edge.ToString(),
            EdgeName = registration.EdgeName,
            EdgeRegion = registration.Region,
            TunnelConnectionId = registration.ConnectionId,
            CredentialId = dial.CredentialId,
            Timings = dial.Timings,
        };
        _events.Publish(registered);
        _dialer.OnRegistered(dial);

        var (connection, feature) = CreateConnection(dial, registered);
        if (!_accepted.TryWrite(connection))
        {
            // Unbound meanwhile: this connection will never be accepted.
            await connection.DisposeAsync().ConfigureAwait(false);
            return false;
        }

        if (_retiring is not null)
        {
            // The replacement is registered: the old connection finishes what it carries and closes.
            RequestGracefulClose(_retiring);
            _retiring = null;
        }

        _moveDone?.TrySetResult(true);
        _moveDone = null;
        TaskCompletionSource registeredSignal;
        lock (_gate)
        {
            _generation = dial.Generation;
            _epoch++;
            _serving = new SlotServing(dial, connection, registered, _epoch);
            registeredSignal = _registered;
            _registered = NewSignal();
        }

        registeredSignal.TrySetResult();
        Forward(feature.MoveRequested, new SlotCommand.EdgeAsksToMove(connection));
        Forward(connection.Disposed, new SlotCommand.Closed(connection));
        if (dial.Generation < _dialer.CurrentGeneration)
        {
            // Dialed with the old credential while it was being renewed: this one is replaced too.
            _renewalNeeded();
        }

        return true;
    }

    private (StreamTransportConnection Connection, TunnelConnectionFeature Feature) CreateConnection(SlotDial dial, TunnelConnectionEvent registered)
    {
        var registration = dial.Registration;
        var registeredAt = registered.Timestamp;
        var connection = new StreamTransportConnection(dial.Stream, registration.ConnectionId, dial.LocalEndPoint, dial.RemoteEndPoint);
        var feature = new TunnelConnectionFeature
        {
            EdgeName = registration.EdgeName,
            EdgeRegion = registration.Region,
            EdgeAddress = dial.Edge.ToString(),
            TunnelConnectionId = registration.ConnectionId,
            ConnectionIndex = _index,
            RegisteredAt = registeredAt,
            CredentialId = dial.CredentialId,
            IdentityKey = registration.IdentityKey,
        };
        feature.AbortConnection = reason =>
        {
            _events.Publish(registered with { Kind = TunnelConnectionEventKind.Dropped, Timestamp = _time.GetUtcNow(), Timings = null, ErrorType = "edge_silent", Reason = reason, Uptime = _time.GetUtcNow() - registeredAt });
            connection.Abort(new ConnectionAbortedException(reason));
        };
        connection.Features.Set<ITunnelConnectionFeature>(feature);
        connection.Start();
        return (connection, feature);
    }

    /// <summary>The loop while a connection serves: waits for the command that ends its time in the slot.</summary>
    private async Task<(SlotExit Exit, RebalanceMove? Move)> ServeAsync(CancellationToken stopping)
    {
        var serving = _serving!;
        while (true)
        {
            var command = await _inbox.Reader.ReadAsync(stopping).ConfigureAwait(false);
            switch (command)
            {
                case SlotCommand.Closed closed when closed.Connection == serving.Connection:
                    return (SlotExit.Closed, null);
                case SlotCommand.EdgeAsksToMove asks when asks.Connection == serving.Connection:
                    return (SlotExit.EdgeAsksToMove, null);
                case SlotCommand.Renew renew when renew.Epoch == serving.Epoch:
                    return (SlotExit.Renew, null);
                case SlotCommand.Rebalance rebalance:
                    if (await TryRebalanceAsync(rebalance, serving, stopping).ConfigureAwait(false))
                    {
                        return (SlotExit.Rebalance, rebalance.Move);
                    }

                    break;
                default:
                    // Meant for a connection this slot no longer serves (or a move that failed): spent.
                    break;
            }
        }
    }

    /// <summary>Dials the less used edge once while the connection keeps serving; true when the replacement is registered there.</summary>
    private async Task<bool> TryRebalanceAsync(SlotCommand.Rebalance rebalance, SlotServing serving, CancellationToken stopping)
    {
        lock (_gate)
        {
            _movePending = false;
        }

        if (rebalance.Epoch != serving.Epoch)
        {
            rebalance.Done.TrySetResult(false);
            return false;
        }

        // If the dial fails, stay here (the failure is reported and the edge set aside for the cool-down).
        _moveDone = rebalance.Done;
        if (!serving.Connection.Disposed.IsCompleted && await TryMoveAsync(rebalance.Move, stopping).ConfigureAwait(false) is { } dialed)
        {
            _replacement = dialed;
            return true;
        }

        _moveDone.TrySetResult(false);
        _moveDone = null;
        return false;
    }

    /// <summary>Dials the edge a move goes to, once; null (with the failure published) when that fails.</summary>
    private async Task<SlotDial?> TryMoveAsync(RebalanceMove move, CancellationToken stopping)
    {
        try
        {
            return await _dialer.DialEdgeAsync(_index, move.To, stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (!stopping.IsCancellationRequested)
        {
            _events.Publish(TunnelEvents.Failure(_index, move.To, ex, TimeSpan.Zero, _time.GetUtcNow()) with { Kind = TunnelConnectionEventKind.RebalanceFailed, RetryDelay = null });
            return null;
        }
    }

    /// <summary>Ends the serving connection's time in the slot; returns the backoff before the next dial, if any.</summary>
    private async Task<TimeSpan?> LeaveAsync(SlotExit exit, RebalanceMove? move, RedialBackoff backoff, CancellationToken stopping)
    {
        var serving = _serving!;
        _serving = null;
        lock (_gate)
        {
            _generation = -1;
        }

        var connection = serving.Connection;
        var registered = serving.Registered;
        var selector = serving.Dial.Selector;
        if (exit == SlotExit.Rebalance && _replacement is { } replacement)
        {
            // The replacement is registered at the less used edge: it takes this slot's place
            // (without a backoff, nothing failed) and this connection closes gracefully.
            Publish(registered, TunnelConnectionEventKind.Rebalancing, move!.Describe(replacement.Registration.EdgeName));
            _retiring = connection;
            return null;
        }

        if (exit == SlotExit.Renew && !connection.Disposed.IsCompleted)
        {
            // A renewed credential: dial the replacement at once (no backoff, the edge did nothing
            // wrong); this connection keeps serving until the replacement is registered.
            Publish(registered, TunnelConnectionEventKind.Renewing);
            selector.ReportDisconnected(_index);
            _retiring = connection;
            return null;
        }

        if (exit == SlotExit.EdgeAsksToMove)
        {
            // A broken connection also ends the anchor; it is disposed moments later. Tell the two
            // apart so the log says what happened.
            await Task.WhenAny(connection.Disposed, Task.Delay(BrokenAnchorGrace, _time, stopping)).ConfigureAwait(false);
        }

        selector.ReportDisconnected(_index);
        selector.ReportFailure(serving.Dial.Edge);
        if (exit == SlotExit.EdgeAsksToMove && !connection.Disposed.IsCompleted)
        {
            // The edge is draining (or the tunnel broke): dial a replacement elsewhere now; this
            // connection keeps serving until the replacement is registered.
            Publish(registered, TunnelConnectionEventKind.Moving);
            _retiring = connection;
        }
        else if (_events.Status.Slots.ElementAtOrDefault(_index) is { IsRegistered: true })
        {
            // (A dropped connection was reported when it was dropped.)
            Publish(registered, TunnelConnectionEventKind.Disconnected);
        }

        return backoff.OnDisconnected() ? null : backoff.NextDelay(null);
    }

    /// <summary>Publishes what became of a registered connection, with its uptime.</summary>
    private void Publish(TunnelConnectionEvent registered, TunnelConnectionEventKind kind, string? reason = null)
    {
        var now = _time.GetUtcNow();
        var e = registered with { Kind = kind, Timestamp = now, Timings = null, Uptime = now - registered.Timestamp };
        _events.Publish(reason is null ? e : e with { Reason = reason });
    }

    private SlotDial? TakeReplacement()
    {
        var replacement = _replacement;
        _replacement = null;
        return replacement;
    }

    /// <summary>Posts <paramref name="command"/> once <paramref name="signal"/> completes.</summary>
    private void Forward(Task signal, SlotCommand command) =>
        signal.ContinueWith(static (_, state) => ((Action)state!)(), (Action)(() => _inbox.Writer.TryWrite(command)), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private static void RequestGracefulClose(StreamTransportConnection connection)
    {
        // Ending the anchor first tells the edge to choose this connection no more (a no-op when the
        // edge already ended it). Kestrel puts the lifetime feature on every connection it serves;
        // asking it to close sends GOAWAY and lets the open streams finish.
        (connection.Features.Get<ITunnelConnectionFeature>() as TunnelConnectionFeature)?.ReleaseAnchor();
        connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
