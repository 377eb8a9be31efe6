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
    private int _lastWarnedEdgeCount = -1;

    // Kestrel disposes a dead connection within milliseconds of its anchor breaking; a draining edge's
    // connection stays open. This long tells the two apart without delaying the replacement noticeably.
    private static readonly TimeSpan BrokenAnchorGrace = TimeSpan.FromMilliseconds(200);

    private readonly TunnelEvents _events;

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
        TunnelLog.Starting(_logger, _settings.HaConnections, string.Join(", ", _settings.Edges), string.Join(", ", _settings.DialOptions.Hostnames));
        _events.Status.Start(_settings.HaConnections);
        _slots = Enumerable.Range(0, _settings.HaConnections)
            .Select(index => Task.Run(() => SuperviseSlotAsync(index)))
            .ToArray();
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
        await _stopping.CancelAsync().ConfigureAwait(false);
        _ready.Writer.TryComplete();
        while (_ready.Reader.TryRead(out var queued))
        {
            await queued.DisposeAsync().ConfigureAwait(false);
        }

        await Task.WhenAll(_slots).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        _stopping.Dispose();
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
        var selector = _settings.Selector;
        EdgeAddress? lastEdge = null;
        var pipeline = RedialPipeline.Create(backoff, (failure, delay) => PublishFailure(index, lastEdge, failure, delay), _time);
        StreamTransportConnection? retiring = null;

        while (!stopping.IsCancellationRequested)
        {
            var edgeConnection = await pipeline.ExecuteAsync(async token =>
            {
                var choice = await selector.SelectAsync(index, token).ConfigureAwait(false);
                lastEdge = choice.Edge;
                if (choice.Wait > TimeSpan.Zero)
                {
                    TunnelLog.WaitingForRetryAfter(_logger, index, choice.Edge.ToString(), choice.Wait.TotalMilliseconds);
                    await Task.Delay(choice.Wait, _time, token).ConfigureAwait(false);
                }

                // A root span per attempt: dials run in the background, not inside any request's trace.
                Activity.Current = null;
                using var activity = TunnelActivitySource.Source.StartActivity("tunnel.dial", ActivityKind.Client);
                activity?.SetTag("tunnel.connection.index", index);
                activity?.SetTag("server.address", choice.Edge.Host);
                activity?.SetTag("server.port", choice.Edge.Port);
                try
                {
                    var dialed = await _settings.Dialer.DialAsync(choice.Edge, index, backoff.ConsecutiveFailures, token).ConfigureAwait(false);
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
                    selector.ReportFailure(choice.Edge, retryAfter);
                    throw;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                    activity?.SetTag("error.type", (ex as EdgeDialException)?.ErrorType ?? ex.GetType().Name);
                    selector.ReportFailure(choice.Edge);
                    throw;
                }
            }, stopping).ConfigureAwait(false);

            var registration = edgeConnection.Registration;
            selector.ReportConnected(index, edgeConnection.Edge, registration.Region, edgeConnection.Timings.Tcp);
            backoff.OnConnected();
            var registeredAt = _time.GetUtcNow();
            var registered = new TunnelConnectionEvent(TunnelConnectionEventKind.Registered, index, registeredAt)
            {
                EdgeAddress = edgeConnection.Edge.ToString(),
                EdgeName = registration.EdgeName,
                EdgeRegion = registration.Region,
                TunnelConnectionId = registration.ConnectionId,
                Timings = edgeConnection.Timings,
            };
            _events.Publish(registered);
            WarnAboutFewEdges(selector.KnownEdgeCount);

            var connection = new StreamTransportConnection(edgeConnection.Stream, registration.ConnectionId, edgeConnection.LocalEndPoint, edgeConnection.RemoteEndPoint);
            var feature = new TunnelConnectionFeature
            {
                EdgeName = registration.EdgeName,
                EdgeRegion = registration.Region,
                EdgeAddress = edgeConnection.Edge.ToString(),
                TunnelConnectionId = registration.ConnectionId,
                ConnectionIndex = index,
                RegisteredAt = registeredAt,
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

            Task outcome;
            try
            {
                outcome = await Task.WhenAny(connection.Disposed, feature.MoveRequested).WaitAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping: Kestrel owns the connection now and closes it gracefully.
                return;
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

    private static void RequestGracefulClose(StreamTransportConnection connection)
    {
        // Kestrel puts this feature on every connection it serves; asking it to close sends GOAWAY and
        // lets the open streams finish.
        connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
    }

    private void WarnAboutFewEdges(int knownEdges)
    {
        var previous = Interlocked.Exchange(ref _lastWarnedEdgeCount, knownEdges);
        if (previous != knownEdges && knownEdges < Math.Min(2, _settings.HaConnections))
        {
            TunnelLog.FewEdges(_logger, knownEdges, _settings.HaConnections);
        }
    }

    private void PublishFailure(int index, EdgeAddress? edge, Exception failure, TimeSpan delay)
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
        _events.Publish(e);
    }
}
