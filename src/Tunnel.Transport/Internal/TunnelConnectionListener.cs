using System.Diagnostics;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Redial;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Kestrel's listener for the tunnel endpoint. <see cref="TunnelOptions.HaConnections"/> slot loops
/// each dial, register and queue a connection, then wait until Kestrel disposes it and dial again.
/// <see cref="AcceptAsync"/> drains the queue; it returns <c>null</c> only once unbound and never throws,
/// because an exception would stop Kestrel's accept loop for good.
/// </summary>
internal sealed class TunnelConnectionListener : IConnectionListener
{
    private readonly TunnelSettings _settings;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Channel<StreamTransportConnection> _ready;
    private readonly CancellationTokenSource _stopping = new();
    private Task[] _slots = [];
    private int _unbound;
    private string? _lastEdgeWarning;

    // Kestrel disposes a dead connection within milliseconds of its anchor breaking; a draining edge's
    // connection stays open. This long tells the two apart without delaying the replacement noticeably.
    private static readonly TimeSpan BrokenAnchorGrace = TimeSpan.FromMilliseconds(200);

    private readonly TunnelEvents _events;
    private readonly SlotState[] _slotStates;
    private readonly SemaphoreSlim _renewed = new(0);
    private TunnelCredentialWatcher? _watcher;
    private Task _renewal = Task.CompletedTask;
    private Task _rebalance = Task.CompletedTask;

    // A move dials one edge once; its dial has its own timeouts. This bounds the wait for it regardless.
    private static readonly TimeSpan RebalanceMoveTimeout = TimeSpan.FromMinutes(2);

    public TunnelConnectionListener(TunnelEndPoint endPoint, TunnelSettings settings, TunnelEvents events, ILogger logger, TimeProvider time)
    {
        EndPoint = endPoint;
        _settings = settings;
        _events = events;
        _logger = logger;
        _time = time;

        _slotStates = Enumerable.Range(0, settings.HaConnections).Select(_ => new SlotState()).ToArray();

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
        TunnelLog.Starting(_logger, _settings.HaConnections, string.Join(", ", state.Edges), string.Join(", ", state.DialOptions.Hostnames));
        _events.Status.Start(_settings.HaConnections);
        _slots = Enumerable.Range(0, _settings.HaConnections)
            .Select(index => Task.Run(() => SuperviseSlotAsync(index)))
            .ToArray();
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
        for (var index = 0; index < _slotStates.Length; index++)
        {
            var slot = _slotStates[index];
            lock (slot)
            {
                if (slot.Generation < 0 || slot.Generation >= generation)
                {
                    continue;
                }

                var registered = slot.Registered.Task;
                slot.RenewRequested.TrySetResult();
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
                for (var moves = 0; moves < _slotStates.Length; moves++)
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
    private Task<bool>? RequestRebalance(RebalanceMove move)
    {
        if ((uint)move.SlotIndex >= (uint)_slotStates.Length)
        {
            return null;
        }

        var slot = _slotStates[move.SlotIndex];
        lock (slot)
        {
            if (slot.Generation < 0 || slot.Rebalance.Task.IsCompleted)
            {
                return null;
            }

            var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            slot.RebalanceDone = done;
            slot.Rebalance.TrySetResult(move);
            return done.Task;
        }
    }

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
        _ready.Writer.TryComplete();
        while (_ready.Reader.TryRead(out var queued))
        {
            await queued.DisposeAsync().ConfigureAwait(false);
        }

        await Task.WhenAll(_slots).ConfigureAwait(false);
        await _renewal.ConfigureAwait(false);
        await _rebalance.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        _stopping.Dispose();
        _renewed.Dispose();
    }

    private async Task SuperviseSlotAsync(int index)
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await RunSlotAsync(index, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A bug, not a network failure (those are retried inside): keep the slot alive regardless.
                TunnelLog.SlotFault(_logger, index, ex);
                try
                {
                    await Task.Delay(_settings.Redial.MaxDelay, _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task RunSlotAsync(int index, CancellationToken stopping)
    {
        var backoff = new RedialBackoff(_settings.Redial, _time);
        EdgeAddress? lastEdge = null;
        var pipeline = RedialPipeline.Create(backoff, (failure, delay) => PublishFailure(index, lastEdge, failure, delay), _time);
        StreamTransportConnection? retiring = null;
        (EdgeConnection Connection, TunnelDialState State)? preDialed = null;
        TaskCompletionSource<bool>? moveDone = null;
        var slot = _slotStates[index];

        try
        {
            while (!stopping.IsCancellationRequested)
            {
                // Each attempt dials with the credential current then: a renewal takes effect at the next dial.
                TunnelDialState state = _settings.Current;
                EdgeConnection edgeConnection;
                if (preDialed is { } moved)
                {
                    // A move to a less used edge, already dialed and registered there.
                    (edgeConnection, state) = moved;
                    preDialed = null;
                }
                else
                {
                    edgeConnection = await pipeline.ExecuteAsync(async token =>
                    {
                        state = _settings.Current;
                        var choice = await state.Selector.SelectAsync(index, token).ConfigureAwait(false);
                        lastEdge = choice.Edge;
                        if (choice.Wait > TimeSpan.Zero)
                        {
                            TunnelLog.WaitingForRetryAfter(_logger, index, choice.Edge.ToString(), choice.Wait.TotalMilliseconds);
                            await Task.Delay(choice.Wait, _time, token).ConfigureAwait(false);
                        }

                        return await DialEdgeAsync(index, choice.Edge, state, backoff.ConsecutiveFailures, token).ConfigureAwait(false);
                    }, stopping).ConfigureAwait(false);
                }

                var registration = edgeConnection.Registration;
                var dialedWith = state;
                var selector = dialedWith.Selector;
                selector.ReportConnected(index, edgeConnection.Edge, registration.Region, edgeConnection.Timings.Tcp);
                backoff.OnConnected();
                var registeredAt = _time.GetUtcNow();
                var registered = new TunnelConnectionEvent(TunnelConnectionEventKind.Registered, index, registeredAt)
                {
                    EdgeAddress = edgeConnection.Edge.ToString(),
                    EdgeName = registration.EdgeName,
                    EdgeRegion = registration.Region,
                    TunnelConnectionId = registration.ConnectionId,
                    CredentialId = dialedWith.CredentialId,
                    Timings = edgeConnection.Timings,
                };
                _events.Publish(registered);
                WarnAboutFewEdges(selector);

                var connection = new StreamTransportConnection(edgeConnection.Stream, registration.ConnectionId, edgeConnection.LocalEndPoint, edgeConnection.RemoteEndPoint);
                var feature = new TunnelConnectionFeature
                {
                    EdgeName = registration.EdgeName,
                    EdgeRegion = registration.Region,
                    EdgeAddress = edgeConnection.Edge.ToString(),
                    TunnelConnectionId = registration.ConnectionId,
                    ConnectionIndex = index,
                    RegisteredAt = registeredAt,
                    CredentialId = dialedWith.CredentialId,
                };
                feature.AbortConnection = reason =>
                {
                    _events.Publish(registered with { Kind = TunnelConnectionEventKind.Dropped, Timestamp = _time.GetUtcNow(), Timings = null, ErrorType = "edge_silent", Reason = reason, Uptime = _time.GetUtcNow() - registeredAt });
                    connection.Abort(new ConnectionAbortedException(reason));
                };
                connection.Features.Set<ITunnelConnectionFeature>(feature);
                connection.Start();

                if (!_ready.Writer.TryWrite(connection))
                {
                    // Unbound meanwhile: this connection will never be accepted.
                    await connection.DisposeAsync().ConfigureAwait(false);
                    return;
                }

                if (retiring is not null)
                {
                    // The replacement is registered: the old connection finishes what it carries and closes.
                    RequestGracefulClose(retiring);
                    retiring = null;
                }

                moveDone?.TrySetResult(true);
                moveDone = null;

                Task renewRequested;
                Task<RebalanceMove> rebalanceRequested;
                lock (slot)
                {
                    slot.Generation = dialedWith.Generation;

                    // A request meant for the connection this one replaces is spent.
                    if (slot.RenewRequested.Task.IsCompleted)
                    {
                        slot.RenewRequested = NewSignal();
                    }

                    if (slot.Rebalance.Task.IsCompleted)
                    {
                        slot.Rebalance = NewMoveSignal();
                        slot.RebalanceDone?.TrySetResult(false);
                        slot.RebalanceDone = null;
                    }

                    renewRequested = slot.RenewRequested.Task;
                    rebalanceRequested = slot.Rebalance.Task;
                    var registeredSignal = slot.Registered;
                    slot.Registered = NewSignal();
                    registeredSignal.TrySetResult();
                }

                if (dialedWith.Generation < _settings.Current.Generation)
                {
                    // Dialed with the old credential while it was being renewed: this one is replaced too.
                    RequestRenewalPass();
                }

                Task outcome;
                RebalanceMove? rebalancing = null;
                try
                {
                    while (true)
                    {
                        outcome = await Task.WhenAny(connection.Disposed, feature.MoveRequested, renewRequested, rebalanceRequested).WaitAsync(stopping).ConfigureAwait(false);
                        if (outcome != rebalanceRequested)
                        {
                            break;
                        }

                        var move = rebalanceRequested.Result;
                        lock (slot)
                        {
                            moveDone = slot.RebalanceDone;
                            slot.RebalanceDone = null;
                            slot.Rebalance = NewMoveSignal();
                            rebalanceRequested = slot.Rebalance.Task;
                        }

                        // Dial the less used edge once while this connection keeps serving; if that fails,
                        // stay here (the failure is reported and the edge set aside for the cool-down).
                        if (!connection.Disposed.IsCompleted && await TryMoveAsync(index, move, stopping).ConfigureAwait(false) is { } dialed)
                        {
                            preDialed = dialed;
                            rebalancing = move;
                            break;
                        }

                        moveDone?.TrySetResult(false);
                        moveDone = null;
                    }
                }
                catch (OperationCanceledException)
                {
                    // Stopping: Kestrel owns the connection now and closes it gracefully.
                    return;
                }

                lock (slot)
                {
                    slot.Generation = -1;
                    if (outcome == renewRequested)
                    {
                        slot.RenewRequested = NewSignal();
                    }
                }

                if (rebalancing is not null && preDialed is { } replacement)
                {
                    // The replacement is registered at the less used edge: it takes this slot's place
                    // (without a backoff, nothing failed) and this connection closes gracefully.
                    var movingAt = _time.GetUtcNow();
                    _events.Publish(registered with
                    {
                        Kind = TunnelConnectionEventKind.Rebalancing,
                        Timestamp = movingAt,
                        Timings = null,
                        Uptime = movingAt - registeredAt,
                        Reason = rebalancing.Describe(replacement.Connection.Registration.EdgeName),
                    });
                    retiring = connection;
                    continue;
                }

                if (outcome == renewRequested && !connection.Disposed.IsCompleted)
                {
                    // A renewed credential: dial the replacement at once (no backoff, the edge did nothing
                    // wrong); this connection keeps serving until the replacement is registered.
                    var renewingAt = _time.GetUtcNow();
                    _events.Publish(registered with { Kind = TunnelConnectionEventKind.Renewing, Timestamp = renewingAt, Timings = null, Uptime = renewingAt - registeredAt });
                    selector.ReportDisconnected(index);
                    retiring = connection;
                    continue;
                }

                if (outcome == feature.MoveRequested)
                {
                    // A broken connection also ends the anchor; it is disposed moments later. Tell the two
                    // apart so the log says what happened.
                    await Task.WhenAny(connection.Disposed, Task.Delay(BrokenAnchorGrace, _time, stopping)).ConfigureAwait(false);
                }

                selector.ReportDisconnected(index);
                selector.ReportFailure(edgeConnection.Edge);
                var moving = outcome == feature.MoveRequested && !connection.Disposed.IsCompleted;
                var closedAt = _time.GetUtcNow();
                if (moving)
                {
                    // The edge is draining (or the tunnel broke): dial a replacement elsewhere now; this
                    // connection keeps serving until the replacement is registered.
                    _events.Publish(registered with { Kind = TunnelConnectionEventKind.Moving, Timestamp = closedAt, Timings = null, Uptime = closedAt - registeredAt });
                    retiring = connection;
                }
                else if (_events.Status.Slots.ElementAtOrDefault(index) is { IsRegistered: true })
                {
                    // (A dropped connection was reported when it was dropped.)
                    _events.Publish(registered with { Kind = TunnelConnectionEventKind.Disconnected, Timestamp = closedAt, Timings = null, Uptime = closedAt - registeredAt });
                }

                if (!backoff.OnDisconnected())
                {
                    var delay = backoff.NextDelay(null);
                    TunnelLog.RedialDelayed(_logger, index, delay.TotalMilliseconds);
                    await Task.Delay(delay, _time, stopping).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            // Whoever waits for a move this slot took on hears it did not happen.
            moveDone?.TrySetResult(false);
            if (preDialed is { } unused)
            {
                await unused.Connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>One dial of one edge, traced as its own root span; a failure sets the edge aside.</summary>
    private async Task<EdgeConnection> DialEdgeAsync(int index, EdgeAddress edge, TunnelDialState state, int consecutiveFailures, CancellationToken token)
    {
        // A root span per attempt: dials run in the background, not inside any request's trace.
        Activity.Current = null;
        using var activity = TunnelActivitySource.Source.StartActivity("tunnel.dial", ActivityKind.Client);
        activity?.SetTag("tunnel.connection.index", index);
        activity?.SetTag("server.address", edge.Host);
        activity?.SetTag("server.port", edge.Port);
        WarnWhenEdgeCertificateUnchecked(index, edge, state.DialOptions);
        try
        {
            var dialed = await state.Dialer.DialAsync(edge, index, consecutiveFailures, token).ConfigureAwait(false);
            activity?.SetTag("tunnel.edge.name", dialed.Registration.EdgeName);
            activity?.SetTag("tunnel.edge.region", dialed.Registration.Region);
            activity?.SetTag("tunnel.connection.id", dialed.Registration.ConnectionId);
            return dialed;
        }
        catch (RegistrationRejectedException rejected)
        {
            activity?.SetStatus(ActivityStatusCode.Error, rejected.Rejection.Message);
            activity?.SetTag("error.type", rejected.Rejection.Code);
            var retryAfter = rejected.Rejection.RetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            state.Selector.ReportFailure(edge, retryAfter);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.SetTag("error.type", (ex as EdgeDialException)?.ErrorType ?? ex.GetType().Name);
            state.Selector.ReportFailure(edge);
            throw;
        }
    }

    /// <summary>A warning at every dial while the edge's certificate check is turned off (Development only).</summary>
    private void WarnWhenEdgeCertificateUnchecked(int index, EdgeAddress edge, EdgeDialOptions dialOptions)
    {
        if (!dialOptions.DangerousAcceptAnyEdgeCertificate)
        {
            return;
        }

        if (dialOptions.AcceptsAnyEdgeCertificate)
        {
            TunnelLog.EdgeCertificateNotValidated(_logger, index, edge.ToString());
        }
        else
        {
            TunnelLog.EdgeCertificatePinStillApplies(_logger, index, edge.ToString(), string.Join(", ", dialOptions.TrustedEdgeCertificates.Select(ca => ca.Subject)));
        }
    }

    /// <summary>Dials the edge a move goes to, once; null (with the failure published) when that fails.</summary>
    private async Task<(EdgeConnection Connection, TunnelDialState State)?> TryMoveAsync(int index, RebalanceMove move, CancellationToken stopping)
    {
        var state = _settings.Current;
        try
        {
            return (await DialEdgeAsync(index, move.To, state, 0, stopping).ConfigureAwait(false), state);
        }
        catch (Exception ex) when (!stopping.IsCancellationRequested)
        {
            _events.Publish(FailureEvent(index, move.To, ex, TimeSpan.Zero) with { Kind = TunnelConnectionEventKind.RebalanceFailed, RetryDelay = null });
            return null;
        }
    }

    private static void RequestGracefulClose(StreamTransportConnection connection)
    {
        // Ending the anchor first tells the edge to choose this connection no more (a no-op when the
        // edge already ended it). Kestrel puts the lifetime feature on every connection it serves;
        // asking it to close sends GOAWAY and lets the open streams finish.
        (connection.Features.Get<ITunnelConnectionFeature>() as TunnelConnectionFeature)?.ReleaseAnchor();
        connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static TaskCompletionSource<RebalanceMove> NewMoveSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>What the renewal needs to know of a slot, and the signals between the two. Locked on itself.</summary>
    private sealed class SlotState
    {
        /// <summary>The credential generation of the slot's registered connection; -1 while it has none.</summary>
        public int Generation { get; set; } = -1;

        /// <summary>Completed by the renewal to make the slot replace its connection.</summary>
        public TaskCompletionSource RenewRequested { get; set; } = NewSignal();

        /// <summary>Completed when the slot next registers a connection.</summary>
        public TaskCompletionSource Registered { get; set; } = NewSignal();

        /// <summary>Completed by the rebalancing check to make the slot move to a less used edge.</summary>
        public TaskCompletionSource<RebalanceMove> Rebalance { get; set; } = NewMoveSignal();

        /// <summary>Told whether the requested move happened; set with <see cref="Rebalance"/>.</summary>
        public TaskCompletionSource<bool>? RebalanceDone { get; set; }
    }

    /// <summary>
    /// Warns, once per change of what discovery lists, when one edge failure would drop every tunnel
    /// connection: a single edge known, or a single edge of the best SRV priority (the others are
    /// backups that slots use only while it is down).
    /// </summary>
    private void WarnAboutFewEdges(EdgeSelector selector)
    {
        var knownEdges = selector.KnownEdgeCount;
        var best = selector.BestPriorityEdges;
        var key = $"{knownEdges}|{string.Join(',', best)}";
        if (Interlocked.Exchange(ref _lastEdgeWarning, key) == key || _settings.HaConnections < 2)
        {
            return;
        }

        if (knownEdges < 2)
        {
            TunnelLog.FewEdges(_logger, knownEdges, _settings.HaConnections);
        }
        else if (best.Count == 1)
        {
            TunnelLog.OneBestPriorityEdge(_logger, _settings.HaConnections, best[0].ToString(), best[0].Priority, knownEdges);
        }
    }

    private void PublishFailure(int index, EdgeAddress? edge, Exception failure, TimeSpan delay) =>
        _events.Publish(FailureEvent(index, edge, failure, delay));

    private TunnelConnectionEvent FailureEvent(int index, EdgeAddress? edge, Exception failure, TimeSpan delay)
    {
        var e = new TunnelConnectionEvent(TunnelConnectionEventKind.DialFailed, index, _time.GetUtcNow())
        {
            EdgeAddress = edge?.ToString(),
            RetryDelay = delay,
            Reason = failure.Message,
        };
        e = failure switch
        {
            RegistrationRejectedException rejected => e with
            {
                Kind = TunnelConnectionEventKind.Rejected,
                Phase = nameof(DialPhase.Registration),
                ErrorType = rejected.Rejection.Code,
                Reason = rejected.Rejection.Message,
                Retryable = rejected.Rejection.Retryable,
            },
            EdgeDiscoveryException => e with { Phase = nameof(DialPhase.Discovery), ErrorType = "discovery_failed" },
            EdgeDialException dial => e with { Phase = dial.Phase.ToString(), ErrorType = dial.ErrorType },
            _ => e with { Phase = "Unknown", ErrorType = failure.GetType().Name },
        };
        return e;
    }
}
