namespace Tunnel.Edge.Dial.Discovery;

/// <summary>The answer to an SRV lookup.</summary>
/// <param name="Targets">The targets in the order the server sent them; <see cref="SrvOrdering.Order"/> puts them in RFC 2782 order.</param>
/// <param name="Ttl">How long the answer may be kept: the smallest TTL of the SRV records it came from.</param>
internal sealed record SrvLookupResult(IReadOnlyList<SrvTarget> Targets, TimeSpan Ttl);
