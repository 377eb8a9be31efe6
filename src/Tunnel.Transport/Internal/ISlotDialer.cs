using System.Net;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Protocol.Registration;

namespace Tunnel.Transport.Internal;

/// <summary>
/// A <see cref="TunnelSlot"/>'s way to the edges: the only seam between the slot's decisions and
/// sockets, so the slot can be driven without them. Shared by every slot of a listener.
/// </summary>
internal interface ISlotDialer
{
    /// <summary>The credential generation new dials use now.</summary>
    int CurrentGeneration { get; }

    /// <summary>
    /// Chooses the edge for slot <paramref name="index"/> (waiting out a retry-after every edge asked
    /// for), names it to <paramref name="edgeChosen"/> so that a failure can say where, then dials and
    /// registers there once. A failure throws, and sets the edge aside.
    /// </summary>
    Task<SlotDial> DialAsync(int index, int previousAttempts, Action<EdgeAddress> edgeChosen, CancellationToken cancellationToken);

    /// <summary>Dials and registers at one given edge once (a rebalancing move). A failure throws, and sets the edge aside.</summary>
    Task<SlotDial> DialEdgeAsync(int index, EdgeAddress edge, CancellationToken cancellationToken);

    /// <summary>Told after a slot has published a registration: checks that span the slots (too few edges).</summary>
    void OnRegistered(SlotDial dial);
}

/// <summary>A connection dialed and registered for a slot, not yet handed to Kestrel.</summary>
/// <param name="Edge">The edge it was dialed to.</param>
/// <param name="Registration">What the edge answered.</param>
/// <param name="Timings">How long each dial phase took.</param>
/// <param name="Stream">The tunnel's byte stream (TLS in production).</param>
/// <param name="LocalEndPoint">This end's address.</param>
/// <param name="RemoteEndPoint">The edge's address.</param>
/// <param name="Selector">The selector of the dial state that dialed it: told when the connection ends.</param>
/// <param name="Generation">The credential generation it was dialed with.</param>
/// <param name="CredentialId">The credential it was dialed with.</param>
internal sealed record SlotDial(
    EdgeAddress Edge,
    RegistrationAccepted Registration,
    DialTimings Timings,
    Stream Stream,
    EndPoint? LocalEndPoint,
    EndPoint? RemoteEndPoint,
    EdgeSelector Selector,
    int Generation,
    string CredentialId) : IAsyncDisposable
{
    public ValueTask DisposeAsync() => Stream.DisposeAsync();
}
