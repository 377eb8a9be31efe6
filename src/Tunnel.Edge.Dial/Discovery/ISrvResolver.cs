namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Looks up the SRV records of a name, with the addresses of their targets.
/// </summary>
internal interface ISrvResolver
{
    /// <summary>
    /// Looks up <paramref name="name"/> (e.g. <c>_tunnel._tcp.example.com</c>). An empty
    /// <see cref="SrvLookupResult.Targets"/> means the name has no SRV records, or says the service is
    /// not available (a lone target <c>"."</c>).
    /// </summary>
    /// <exception cref="DnsResolutionException">The name does not exist, or no server answered usefully.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    Task<SrvLookupResult> ResolveSrvAsync(string name, CancellationToken cancellationToken);
}
