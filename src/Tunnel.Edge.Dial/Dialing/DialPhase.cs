namespace Tunnel.Edge.Dial.Dialing;

/// <summary>The step of a dial in which something happened.</summary>
public enum DialPhase
{
    /// <summary>Finding the edge (DNS).</summary>
    Discovery,

    /// <summary>The TCP connect.</summary>
    Tcp,

    /// <summary>The TLS handshake.</summary>
    Tls,

    /// <summary>The registration exchange.</summary>
    Registration,
}
