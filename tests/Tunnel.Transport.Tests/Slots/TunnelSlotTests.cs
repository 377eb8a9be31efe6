using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Protocol.Registration;
using Tunnel.Transport.Internal;
using static Tunnel.Transport.Tests.Slots.SlotHarness;

namespace Tunnel.Transport.Tests.Slots;

/// <summary>
/// Every transition of a <see cref="TunnelSlot"/>, driven through a fake dialer and a fake clock: what
/// the slot publishes, when it dials, how long it waits, and which connection it asks to close.
/// </summary>
public sealed class TunnelSlotTests : IAsyncLifetime
{
    private static readonly RebalanceMove MoveToB = new(0, EdgeA, EdgeB, SlotsOnFrom: 2, SlotsOnTo: 0, RebalanceCause.Spread);

    private readonly SlotHarness _h = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Registers_the_dialed_connection_and_queues_it_for_Kestrel()
    {
        _h.Slot.Start();
        var call = await _h.Dialer.NextCallAsync();
        Assert.Equal(0, call.PreviousAttempts);
        var dial = call.Succeed(generation: 3);

        var registered = await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
        var accepted = await _h.AcceptAsync();

        Assert.Equal(EdgeA.ToString(), registered.EdgeAddress);
        Assert.Equal(dial.Registration.ConnectionId, registered.TunnelConnectionId);
        Assert.Equal("CRED3", registered.CredentialId);
        Assert.Equal(dial.Registration.ConnectionId, accepted.Feature.TunnelConnectionId);
        Assert.Equal(0, accepted.Feature.ConnectionIndex);
        Assert.Equal(3, _h.Slot.Generation);
        Assert.Equal(1, _h.Selector.Placement()[EdgeA]);
    }

    [Fact]
    public async Task Backs_off_between_failed_dials_with_growing_jittered_delays()
    {
        _h.Slot.Start();
        TimeSpan[] expected = [TimeSpan.FromMilliseconds(125), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)];
        for (var attempt = 0; attempt < expected.Length; attempt++)
        {
            var call = await _h.Dialer.NextCallAsync();
            Assert.Equal(attempt, call.PreviousAttempts);
            call.Fail(new EdgeDialException(DialPhase.Tcp, "connection_refused", "refused"));

            var failed = await _h.NextEventAsync(TunnelConnectionEventKind.DialFailed);
            Assert.Equal(expected[attempt], failed.RetryDelay);
            Assert.Equal(EdgeA.ToString(), failed.EdgeAddress);
            Assert.Equal("Tcp", failed.Phase);
            Assert.Equal("connection_refused", failed.ErrorType);
            Assert.True(_h.Dialer.NoCallPending);
            await _h.ElapseAsync(expected[attempt]);
        }

        var last = await _h.Dialer.NextCallAsync();
        Assert.Equal(expected.Length, last.PreviousAttempts);
        last.Succeed();
        await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
    }

    [Fact]
    public async Task Waits_between_half_the_cap_and_the_cap_after_a_refusal_that_will_not_change()
    {
        _h.Slot.Start();
        (await _h.Dialer.NextCallAsync()).Refuse(RejectionCodes.HostnameNotAuthorized, retryable: false);

        var rejected = await _h.NextEventAsync(TunnelConnectionEventKind.Rejected);
        Assert.Equal(TimeSpan.FromSeconds(22.5), rejected.RetryDelay);
        Assert.Equal(RejectionCodes.HostnameNotAuthorized, rejected.ErrorType);
        Assert.Equal("Registration", rejected.Phase);
        Assert.False(rejected.Retryable);

        await _h.ElapseAsync(TimeSpan.FromSeconds(22.5));
        Assert.Equal(1, (await _h.Dialer.NextCallAsync()).PreviousAttempts);
    }

    [Fact]
    public async Task Redials_after_a_backoff_when_a_connection_closes_before_it_was_stable()
    {
        var first = await _h.StartRegisteredAsync();
        await first.Connection.DisposeAsync();

        var disconnected = await _h.NextEventAsync(TunnelConnectionEventKind.Disconnected);
        Assert.Equal(first.Feature.TunnelConnectionId, disconnected.TunnelConnectionId);
        await _h.ElapseAsync(TimeSpan.FromMilliseconds(125));
        Assert.Equal(1, (await _h.Dialer.NextCallAsync()).PreviousAttempts);
        Assert.Equal(-1, _h.Slot.Generation);
    }

    [Fact]
    public async Task Redials_at_once_when_a_stable_connection_closes()
    {
        var first = await _h.StartRegisteredAsync();
        _h.Time.Advance(_h.Redial.StablePeriod);
        await first.Connection.DisposeAsync();

        var disconnected = await _h.NextEventAsync(TunnelConnectionEventKind.Disconnected);
        Assert.Equal(_h.Redial.StablePeriod, disconnected.Uptime);
        Assert.Equal(0, (await _h.Dialer.NextCallAsync()).PreviousAttempts);
    }

    [Fact]
    public async Task Renews_by_registering_a_replacement_before_closing_the_old_connection()
    {
        var first = await _h.StartRegisteredAsync(generation: 0);
        _h.Dialer.CurrentGeneration = 1;

        var renewed = _h.Slot.RequestRenewal(1);
        Assert.NotNull(renewed);
        await _h.NextEventAsync(TunnelConnectionEventKind.Renewing);
        var replacement = await _h.Dialer.NextCallAsync();
        Assert.False(first.AskedToClose);
        Assert.False(renewed.IsCompleted);

        replacement.Succeed(generation: 1);
        await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
        await _h.AcceptAsync();
        await renewed.WaitAsync(Patience);
        await first.Lifetime.CloseRequested.Task.WaitAsync(Patience);
        Assert.True(first.Feature.AnchorReleased.IsCancellationRequested);
        Assert.Equal(1, _h.Slot.Generation);
        Assert.Null(_h.Slot.RequestRenewal(1));
    }

    [Fact]
    public async Task A_refused_renewal_keeps_the_old_connection_serving_and_backs_off()
    {
        var first = await _h.StartRegisteredAsync(generation: 0);
        _h.Dialer.CurrentGeneration = 1;
        Assert.NotNull(_h.Slot.RequestRenewal(1));
        await _h.NextEventAsync(TunnelConnectionEventKind.Renewing);

        (await _h.Dialer.NextCallAsync()).Refuse(RejectionCodes.CredentialRevoked, retryable: false);
        var rejected = await _h.NextEventAsync(TunnelConnectionEventKind.Rejected);
        Assert.Equal(TimeSpan.FromSeconds(22.5), rejected.RetryDelay);
        Assert.False(first.AskedToClose);

        await _h.ElapseAsync(TimeSpan.FromSeconds(22.5));
        (await _h.Dialer.NextCallAsync()).Succeed(generation: 1);
        await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
        await first.Lifetime.CloseRequested.Task.WaitAsync(Patience);
    }

    [Fact]
    public async Task Asks_for_another_renewal_pass_when_it_registers_with_a_credential_renewed_meanwhile()
    {
        _h.Dialer.CurrentGeneration = 1;
        await _h.StartRegisteredAsync(generation: 0);

        await _h.RenewalNeeded.WaitAsync(Patience);
        Assert.NotNull(_h.Slot.RequestRenewal(1));
    }

    [Fact]
    public async Task Does_not_renew_a_connection_dialed_with_the_current_credential()
    {
        Assert.Null(_h.Slot.RequestRenewal(1));
        await _h.StartRegisteredAsync(generation: 1);

        Assert.Null(_h.Slot.RequestRenewal(1));
        Assert.NotNull(_h.Slot.RequestRenewal(2));
    }

    [Fact]
    public async Task Moves_to_another_edge_when_the_edge_drains_and_closes_the_old_connection_once_the_new_one_is_registered()
    {
        var first = await _h.StartRegisteredAsync();
        _h.Time.Advance(_h.Redial.StablePeriod);
        _h.Dialer.NextEdge = EdgeB;

        first.Feature.RequestMove();
        await _h.ElapseAsync(TunnelSlot.BrokenAnchorGrace);
        var moving = await _h.NextEventAsync(TunnelConnectionEventKind.Moving);
        Assert.Equal(first.Feature.TunnelConnectionId, moving.TunnelConnectionId);
        Assert.Equal(EdgeB, (await _h.Selector.SelectAsync(1, default)).Edge);

        var replacement = await _h.Dialer.NextCallAsync();
        Assert.Equal(0, replacement.PreviousAttempts);
        Assert.False(first.AskedToClose);
        replacement.Succeed();

        var registered = await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
        Assert.Equal(EdgeB.ToString(), registered.EdgeAddress);
        await first.Lifetime.CloseRequested.Task.WaitAsync(Patience);
    }

    [Fact]
    public async Task A_broken_anchor_whose_connection_closes_within_the_grace_is_a_disconnection()
    {
        var first = await _h.StartRegisteredAsync();

        first.Feature.RequestMove();
        await _h.Time.WaitForTimerAsync(TunnelSlot.BrokenAnchorGrace);
        await first.Connection.DisposeAsync();

        await _h.NextEventAsync(TunnelConnectionEventKind.Disconnected);
        await _h.ElapseAsync(TimeSpan.FromMilliseconds(125));
        Assert.Equal(1, (await _h.Dialer.NextCallAsync()).PreviousAttempts);
    }

    [Fact]
    public async Task A_dropped_connection_is_not_reported_again_when_it_closes()
    {
        var first = await _h.StartRegisteredAsync();

        first.Feature.AbortConnection!("no heartbeat");
        var dropped = await _h.NextEventAsync(TunnelConnectionEventKind.Dropped);
        Assert.Equal("edge_silent", dropped.ErrorType);
        await first.Connection.DisposeAsync();

        await _h.ElapseAsync(TimeSpan.FromMilliseconds(125));
        (await _h.Dialer.NextCallAsync()).Succeed();
        await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
    }

    [Fact]
    public async Task Rebalances_by_registering_at_the_less_used_edge_before_closing_the_old_connection()
    {
        var first = await _h.StartRegisteredAsync();

        var done = _h.Slot.RequestRebalance(MoveToB);
        Assert.NotNull(done);
        Assert.Null(_h.Slot.RequestRebalance(MoveToB));
        var call = await _h.Dialer.NextCallAsync();
        Assert.True(call.IsMove);
        Assert.Equal(EdgeB, call.Edge);
        Assert.False(first.AskedToClose);
        call.Succeed();

        var rebalancing = await _h.NextEventAsync(TunnelConnectionEventKind.Rebalancing);
        Assert.Equal(MoveToB.Describe(EdgeB.Host), rebalancing.Reason);
        Assert.Equal(first.Feature.TunnelConnectionId, rebalancing.TunnelConnectionId);
        var registered = await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
        Assert.Equal(EdgeB.ToString(), registered.EdgeAddress);
        Assert.True(await done.WaitAsync(Patience));
        await first.Lifetime.CloseRequested.Task.WaitAsync(Patience);
        Assert.True(_h.Dialer.NoCallPending);
    }

    [Fact]
    public async Task A_move_to_a_dead_edge_leaves_the_connection_where_it_is()
    {
        var first = await _h.StartRegisteredAsync();

        var done = _h.Slot.RequestRebalance(MoveToB)!;
        (await _h.Dialer.NextCallAsync()).Fail(new EdgeDialException(DialPhase.Tcp, "connection_refused", "refused"));

        var failed = await _h.NextEventAsync(TunnelConnectionEventKind.RebalanceFailed);
        Assert.Equal(EdgeB.ToString(), failed.EdgeAddress);
        Assert.Null(failed.RetryDelay);
        Assert.False(await done.WaitAsync(Patience));
        Assert.False(first.AskedToClose);

        // Still the slot's connection: the slot may be asked again, and closing it is a disconnection.
        Assert.NotNull(_h.Slot.RequestRebalance(MoveToB));
        (await _h.Dialer.NextCallAsync()).Fail(new EdgeDialException(DialPhase.Tcp, "connection_refused", "refused"));
        await _h.NextEventAsync(TunnelConnectionEventKind.RebalanceFailed);
        await first.Connection.DisposeAsync();
        await _h.NextEventAsync(TunnelConnectionEventKind.Disconnected);
    }

    [Fact]
    public async Task The_old_connection_closing_while_its_replacement_dials_changes_nothing()
    {
        var first = await _h.StartRegisteredAsync(generation: 0);
        _h.Dialer.CurrentGeneration = 1;
        Assert.NotNull(_h.Slot.RequestRenewal(1));
        await _h.NextEventAsync(TunnelConnectionEventKind.Renewing);
        var replacement = await _h.Dialer.NextCallAsync();

        await first.Connection.DisposeAsync();
        replacement.Succeed(generation: 1);

        await _h.NextEventAsync(TunnelConnectionEventKind.Registered);
        var second = await _h.AcceptAsync();
        await second.Connection.DisposeAsync();
        await _h.NextEventAsync(TunnelConnectionEventKind.Disconnected);
    }

    [Fact]
    public async Task Stopping_while_dialing_cancels_the_dial()
    {
        _h.Slot.Start();
        var call = await _h.Dialer.NextCallAsync();

        await _h.Slot.DisposeAsync().AsTask().WaitAsync(Patience);

        await call.Cancelled.WaitAsync(Patience);
        Assert.True(_h.NoEventPending);
    }

    [Fact]
    public async Task Stopping_while_backing_off_dials_no_more()
    {
        _h.Slot.Start();
        (await _h.Dialer.NextCallAsync()).Fail(new EdgeDialException(DialPhase.Tcp, "connection_refused", "refused"));
        await _h.NextEventAsync(TunnelConnectionEventKind.DialFailed);
        await _h.Time.WaitForTimerAsync(TimeSpan.FromMilliseconds(125));

        await _h.Slot.DisposeAsync().AsTask().WaitAsync(Patience);
        _h.Time.Advance(_h.Redial.MaxDelay);

        Assert.True(_h.Dialer.NoCallPending);
    }

    [Fact]
    public async Task Stopping_while_connected_leaves_the_connection_to_Kestrel()
    {
        var first = await _h.StartRegisteredAsync();

        await _h.Slot.DisposeAsync().AsTask().WaitAsync(Patience);

        Assert.False(first.Connection.Disposed.IsCompleted);
        Assert.False(first.AskedToClose);
        Assert.Null(_h.Slot.RequestRebalance(MoveToB));
        await first.Connection.DisposeAsync();
    }

    [Fact]
    public async Task Stopping_while_a_move_dials_tells_the_rebalancing_it_did_not_happen()
    {
        await _h.StartRegisteredAsync();
        var done = _h.Slot.RequestRebalance(MoveToB)!;
        var call = await _h.Dialer.NextCallAsync();

        await _h.Slot.DisposeAsync().AsTask().WaitAsync(Patience);

        await call.Cancelled.WaitAsync(Patience);
        Assert.False(await done.WaitAsync(Patience));
    }
}
