using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Redial;
using Tunnel.Protocol.Registration;
using Tunnel.Transport.Internal;

namespace Tunnel.Transport.Tests.Slots;

/// <summary>
/// One <see cref="TunnelSlot"/> with everything around it faked: the dialer (each dial waits for the
/// test to answer it), the clock (it moves only when the test advances it), and Kestrel (the test
/// accepts and closes connections). Events, timers and dials are read from channels with a timeout.
/// </summary>
internal sealed class SlotHarness : IAsyncDisposable
{
    public static readonly EdgeAddress EdgeA = new("edge-a.test", 7844);
    public static readonly EdgeAddress EdgeB = new("edge-b.test", 7844);

    /// <summary>How long a test waits for something the slot does; far above what it needs.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly Channel<TunnelConnectionEvent> _events = Channel.CreateUnbounded<TunnelConnectionEvent>();
    private readonly Channel<StreamTransportConnection> _accepted = Channel.CreateUnbounded<StreamTransportConnection>();
    private readonly TaskCompletionSource _renewalNeeded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SlotHarness()
    {
        Selector = new EdgeSelector(new StaticEdgeDiscovery([EdgeA, EdgeB]), TimeSpan.FromSeconds(30), Time);
        Dialer = new FakeSlotDialer(Selector);
        var status = new TunnelStatus(Time);
        status.Start(1);
        Events = new TunnelEvents(NullLoggerFactory.Instance, status, new TunnelMetrics(_services.GetRequiredService<IMeterFactory>(), status));
        Events.Published += e => _events.Writer.TryWrite(e);
        Slot = new TunnelSlot(0, Dialer, Events, _accepted.Writer, Redial, () => _renewalNeeded.TrySetResult(), NullLogger.Instance, Time, new MidpointRandom());
    }

    /// <summary>The defaults: 1 s base, 30 s cap, 5 s stable period.</summary>
    public RedialBackoffOptions Redial { get; } = new();

    public RecordingTimeProvider Time { get; } = new();

    public EdgeSelector Selector { get; }

    public FakeSlotDialer Dialer { get; }

    public TunnelEvents Events { get; }

    public TunnelSlot Slot { get; }

    /// <summary>Completes when the slot asks for a renewal pass.</summary>
    public Task RenewalNeeded => _renewalNeeded.Task;

    public async Task<TunnelConnectionEvent> NextEventAsync(TunnelConnectionEventKind expected)
    {
        var e = await _events.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal(expected, e.Kind);
        return e;
    }

    /// <summary>True when no event is waiting to be read (call once the slot is known to be waiting).</summary>
    public bool NoEventPending => !_events.Reader.TryPeek(out _);

    /// <summary>Kestrel's part: takes the next queued connection and puts the lifetime feature on it.</summary>
    public async Task<AcceptedConnection> AcceptAsync()
    {
        var connection = await _accepted.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        var lifetime = new FakeLifetime();
        connection.Features.Set<IConnectionLifetimeNotificationFeature>(lifetime);
        return new AcceptedConnection(connection, (TunnelConnectionFeature)connection.Features.Get<ITunnelConnectionFeature>()!, lifetime);
    }

    /// <summary>Starts the slot and registers its first connection.</summary>
    public async Task<AcceptedConnection> StartRegisteredAsync(int generation = 0)
    {
        Slot.Start();
        (await Dialer.NextCallAsync()).Succeed(generation);
        await NextEventAsync(TunnelConnectionEventKind.Registered);
        return await AcceptAsync();
    }

    /// <summary>Waits until the slot starts a wait of exactly <paramref name="due"/>, then lets it pass.</summary>
    public async Task ElapseAsync(TimeSpan due)
    {
        await Time.WaitForTimerAsync(due);
        Time.Advance(due);
    }

    public async ValueTask DisposeAsync()
    {
        await Slot.DisposeAsync();
        await _services.DisposeAsync();
    }
}

internal sealed record AcceptedConnection(StreamTransportConnection Connection, TunnelConnectionFeature Feature, FakeLifetime Lifetime)
{
    public bool AskedToClose => Lifetime.CloseRequested.Task.IsCompleted;
}

/// <summary>Kestrel's close request, recorded.</summary>
internal sealed class FakeLifetime : IConnectionLifetimeNotificationFeature
{
    public CancellationToken ConnectionClosedRequested { get; set; }

    public TaskCompletionSource CloseRequested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void RequestClose() => CloseRequested.TrySetResult();
}

/// <summary>Full jitter at its midpoint, so every backoff delay is known exactly.</summary>
internal sealed class MidpointRandom : Random
{
    public override double NextDouble() => 0.5;
}

/// <summary>A <see cref="FakeTimeProvider"/> that tells when a timer is created, so a test advances the clock only once the slot waits.</summary>
internal sealed class RecordingTimeProvider : FakeTimeProvider
{
    private readonly Channel<TimeSpan> _timers = Channel.CreateUnbounded<TimeSpan>();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        _timers.Writer.TryWrite(dueTime);
        return timer;
    }

    /// <summary>Waits for the next timer of exactly <paramref name="due"/>, passing over others.</summary>
    public async Task WaitForTimerAsync(TimeSpan due)
    {
        using var patience = new CancellationTokenSource(SlotHarness.Patience);
        while (await _timers.Reader.ReadAsync(patience.Token) != due)
        {
        }
    }
}

/// <summary>Dials that wait for the test to answer them.</summary>
internal sealed class FakeSlotDialer(EdgeSelector selector) : ISlotDialer
{
    private readonly Channel<DialCall> _calls = Channel.CreateUnbounded<DialCall>();
    private int _generation;

    public int CurrentGeneration
    {
        get => Volatile.Read(ref _generation);
        set => Volatile.Write(ref _generation, value);
    }

    /// <summary>The edge the next ordinary dial goes to.</summary>
    public EdgeAddress NextEdge { get; set; } = SlotHarness.EdgeA;

    public Task<SlotDial> DialAsync(int index, int previousAttempts, Action<EdgeAddress> edgeChosen, CancellationToken cancellationToken)
    {
        var edge = NextEdge;
        edgeChosen(edge);
        return Enqueue(new DialCall(edge, previousAttempts, IsMove: false, selector, cancellationToken));
    }

    public Task<SlotDial> DialEdgeAsync(int index, EdgeAddress edge, CancellationToken cancellationToken) =>
        Enqueue(new DialCall(edge, 0, IsMove: true, selector, cancellationToken));

    public void OnRegistered(SlotDial dial)
    {
    }

    public async Task<DialCall> NextCallAsync() => await _calls.Reader.ReadAsync().AsTask().WaitAsync(SlotHarness.Patience);

    public bool NoCallPending => !_calls.Reader.TryPeek(out _);

    private Task<SlotDial> Enqueue(DialCall call)
    {
        _calls.Writer.TryWrite(call);
        return call.Result;
    }
}

/// <summary>One dial the slot made; the test answers it with <see cref="Succeed"/> or <see cref="Fail"/>.</summary>
internal sealed record DialCall(EdgeAddress Edge, int PreviousAttempts, bool IsMove, EdgeSelector Selector, CancellationToken Token)
{
    private static int s_connections;
    private readonly TaskCompletionSource<SlotDial> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<SlotDial> Result => _result.Task.WaitAsync(Token);

    /// <summary>Completes when the slot gives up on this dial.</summary>
    public Task Cancelled => Task.Delay(Timeout.Infinite, Token).ContinueWith(_ => { }, TaskScheduler.Default);

    public SlotDial Succeed(int generation = 0)
    {
        var id = "conn-" + Interlocked.Increment(ref s_connections);
        var registration = new RegistrationAccepted { ConnectionId = id, EdgeName = Edge.Host, Region = "" };
        var dial = new SlotDial(Edge, registration, new DialTimings(TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(3)), new IdleStream(), null, null, Selector, generation, "CRED" + generation);
        _result.TrySetResult(dial);
        return dial;
    }

    public void Fail(Exception failure) => _result.TrySetException(failure);

    public void Refuse(string code, bool retryable) =>
        Fail(new RegistrationRejectedException(new RegistrationRejected { Code = code, Message = "refused: " + code, Retryable = retryable }));
}

/// <summary>A tunnel stream that carries nothing: reads wait until it is closed.</summary>
internal sealed class IdleStream : Stream
{
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsClosed => _closed.Task.IsCompleted;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _closed.Task.WaitAsync(cancellationToken);
        return 0;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count)
    {
    }

    protected override void Dispose(bool disposing)
    {
        _closed.TrySetResult();
        base.Dispose(disposing);
    }
}
