namespace Tunnel.Transport;

/// <summary>
/// Present on every connection (and so every request) that came through a tunnel; absent on the
/// app's ordinary listeners. Read it with <c>HttpContext.Features.Get&lt;ITunnelConnectionFeature&gt;()</c>.
/// </summary>
public interface ITunnelConnectionFeature
{
    /// <summary>The edge's name, from its registration reply.</summary>
    string EdgeName { get; }

    /// <summary>The edge's region; empty when the edge has none.</summary>
    string EdgeRegion { get; }

    /// <summary>The edge address that was dialed (<c>host:port</c>).</summary>
    string EdgeAddress { get; }

    /// <summary>The id the edge gave this tunnel connection.</summary>
    string TunnelConnectionId { get; }

    /// <summary>Which connection slot this connection fills (0-based).</summary>
    int ConnectionIndex { get; }

    /// <summary>When the connection registered.</summary>
    DateTimeOffset RegisteredAt { get; }

    /// <summary>
    /// The id of the credential the connection was dialed with: its certificate's serial number,
    /// upper-case hex, as the edge lists it.
    /// </summary>
    string CredentialId { get; }
}
