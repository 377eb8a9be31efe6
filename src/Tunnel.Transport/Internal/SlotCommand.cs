using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Transport.Internal;

/// <summary>What can happen to a slot; the loop decides what each means in the state it is in.</summary>
internal abstract record SlotCommand
{
    /// <summary>The credential was renewed: replace the registration <paramref name="Epoch"/>.</summary>
    public sealed record Renew(int Epoch) : SlotCommand;

    /// <summary>The spread is uneven: move registration <paramref name="Epoch"/>; <paramref name="Done"/> hears whether it did.</summary>
    public sealed record Rebalance(int Epoch, RebalanceMove Move, TaskCompletionSource<bool> Done) : SlotCommand;

    /// <summary>The edge asked the connection to move (it drains), or the anchor broke.</summary>
    public sealed record EdgeAsksToMove(StreamTransportConnection Connection) : SlotCommand;

    /// <summary>Kestrel disposed the connection.</summary>
    public sealed record Closed(StreamTransportConnection Connection) : SlotCommand;
}

/// <summary>Why a connection's time in its slot ended.</summary>
internal enum SlotExit
{
    Closed,
    EdgeAsksToMove,
    Renew,
    Rebalance,
}

/// <summary>A registered connection and what the slot remembers of it.</summary>
internal sealed record SlotServing(SlotDial Dial, StreamTransportConnection Connection, TunnelConnectionEvent Registered, int Epoch);
