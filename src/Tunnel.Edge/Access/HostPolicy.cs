using System.Net;
using System.Threading.RateLimiting;

namespace Tunnel.Edge.Access;

/// <summary>The resolved rules for requests to one <c>Edge:Hosts</c> entry, or the global defaults.</summary>
internal sealed class HostPolicy : IDisposable
{
    public required string Name { get; init; }

    public IReadOnlyList<IPNetwork> Allow { get; init; } = [];

    public IReadOnlyList<IPNetwork> Deny { get; init; } = [];

    public long? MaxRequestBodySize { get; init; }

    public int? MaxConcurrentRequests { get; init; }

    public int? MaxConcurrentRequestsPerConnection { get; init; }

    /// <summary>Requests in flight per visitor address (IPv6 /64) for one hostname; <c>null</c> for no cap.</summary>
    public int? MaxConcurrentRequestsPerVisitor { get; init; }

    public TimeSpan ResponseHeadersTimeout { get; init; } = EdgeLimitsOptions.DefaultResponseHeadersTimeout;

    public PartitionedRateLimiter<IPAddress>? RateLimiter { get; init; }

    /// <summary>Used when a request did not pass the access middleware (it always does in the edge).</summary>
    public static HostPolicy Unrestricted { get; } = new() { Name = "(none)" };

    /// <summary>Why <paramref name="visitor"/> may not visit, or <c>null</c> when it may.</summary>
    public string? Refusal(IPAddress? visitor)
    {
        if (Allow.Count == 0 && Deny.Count == 0)
        {
            return null;
        }

        if (visitor is null)
        {
            return "the visitor's address is unknown";
        }

        foreach (var range in Deny)
        {
            if (range.Contains(visitor))
            {
                return $"{visitor} is in the denied range {range}";
            }
        }

        if (Allow.Count > 0 && !Allow.Any(range => range.Contains(visitor)))
        {
            return $"{visitor} is in no allowed range";
        }

        return null;
    }

    public void Dispose() => RateLimiter?.Dispose();
}
