namespace Tunnel.Edge.Cluster;

/// <summary>
/// The embedded default: one edge, no peers. The edge's own <see cref="Routing.RouteTable"/> in memory
/// is the whole truth, as it was before clusters.
/// </summary>
internal sealed class InMemoryRouteStore : IRouteStore
{
    /// <inheritdoc />
    public ClusterSnapshot Current => ClusterSnapshot.Empty;

    /// <inheritdoc />
    public bool IsConnected => true;

    /// <inheritdoc />
    public event Action? Changed
    {
        add { }
        remove { }
    }
}
