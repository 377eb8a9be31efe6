namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Finds the edges an origin may dial.
/// </summary>
public interface IEdgeDiscovery
{
    /// <summary>
    /// Returns the edges known now, best first. Never returns an empty list: when no edge can be
    /// found it throws an exception that says why.
    /// </summary>
    ValueTask<IReadOnlyList<EdgeAddress>> GetEdgesAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A fixed list of edges, given in configuration.
/// </summary>
public sealed class StaticEdgeDiscovery : IEdgeDiscovery
{
    private readonly IReadOnlyList<EdgeAddress> _edges;

    /// <summary>Creates the discovery over a non-empty list of edges.</summary>
    public StaticEdgeDiscovery(IEnumerable<EdgeAddress> edges)
    {
        ArgumentNullException.ThrowIfNull(edges);
        _edges = edges.ToArray();
        if (_edges.Count == 0)
        {
            throw new ArgumentException("At least one edge address is required.", nameof(edges));
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<EdgeAddress>> GetEdgesAsync(CancellationToken cancellationToken) => new(_edges);
}
