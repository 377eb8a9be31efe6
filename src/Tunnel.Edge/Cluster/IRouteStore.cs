namespace Tunnel.Edge.Cluster;

/// <summary>
/// Where an edge learns which other edges hold live tunnel connections for a hostname. Reads are of a
/// local copy and never wait: a visitor's request must not depend on the store being reachable.
/// </summary>
internal interface IRouteStore
{
    /// <summary>The cluster as this edge last saw it (this edge included).</summary>
    ClusterSnapshot Current { get; }

    /// <summary>Whether the store answered the edge's last call.</summary>
    bool IsConnected { get; }

    /// <summary>Raised after <see cref="Current"/> changed.</summary>
    event Action? Changed;
}
