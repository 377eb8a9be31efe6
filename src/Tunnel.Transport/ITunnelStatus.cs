namespace Tunnel.Transport;

/// <summary>
/// The tunnel's state, read-only, for an app to show (inject it) and for the health check.
/// </summary>
public interface ITunnelStatus
{
    /// <summary>How many connections the tunnel keeps (<see cref="TunnelOptions.HaConnections"/>); 0 before it starts.</summary>
    int DesiredConnections { get; }

    /// <summary>How many slots hold a registered connection now.</summary>
    int RegisteredConnections { get; }

    /// <summary>Each slot's state, by index.</summary>
    IReadOnlyList<TunnelSlotStatus> Slots { get; }

    /// <summary>The most recent failure (dial failed, refused, dropped), or <c>null</c>.</summary>
    TunnelConnectionEvent? LastError { get; }

    /// <summary>The most recent events, oldest first (at most 100).</summary>
    IReadOnlyList<TunnelConnectionEvent> RecentEvents { get; }
}

/// <summary>One connection slot's state.</summary>
/// <param name="ConnectionIndex">The slot (0-based).</param>
/// <param name="IsRegistered">Whether it holds a registered connection.</param>
/// <param name="EdgeName">The edge it is registered with, or <c>null</c>.</param>
/// <param name="EdgeRegion">That edge's region, or <c>null</c>.</param>
/// <param name="EdgeAddress">That edge's address, or <c>null</c>.</param>
/// <param name="TunnelConnectionId">The edge's id for the connection, or <c>null</c>.</param>
/// <param name="Since">When the slot entered this state.</param>
/// <param name="LastError">The slot's last failure since it was last registered, or <c>null</c>.</param>
public sealed record TunnelSlotStatus(
    int ConnectionIndex,
    bool IsRegistered,
    string? EdgeName,
    string? EdgeRegion,
    string? EdgeAddress,
    string? TunnelConnectionId,
    DateTimeOffset Since,
    TunnelConnectionEvent? LastError);
