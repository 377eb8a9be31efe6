using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Tunnel.Protocol;

namespace Tunnel.Edge.Access;

/// <summary>
/// The <c>Edge:Limits</c> defaults and the <c>Edge:Hosts</c> entries, validated and compiled once at
/// start: CIDR ranges parsed, rate limiters built. Looks a visitor's host up exact name first, then the
/// wildcard one label up, then the defaults.
/// </summary>
internal sealed class HostPolicies : IDisposable
{
    // Kestrel refuses to start when the header limit exceeds its request buffer (MaxRequestBufferSize, 1 MiB).
    internal const int MaxHeadersTotalSizeCeiling = 1024 * 1024;

    private readonly Dictionary<string, HostPolicy> _hosts;

    private HostPolicies(HostPolicy defaults, Dictionary<string, HostPolicy> hosts)
    {
        Defaults = defaults;
        _hosts = hosts;
    }

    public HostPolicy Defaults { get; }

    /// <summary>
    /// Compiles the options' limits and host entries, which <see cref="EdgeOptionsValidator"/> checks at start;
    /// throws one error listing every problem when they are not valid.
    /// </summary>
    public static HostPolicies Create(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        Validate(options, errors);
        if (errors.Count > 0)
        {
            throw new InvalidOperationException("The edge's limits are misconfigured:" + Environment.NewLine + " - " + string.Join(Environment.NewLine + " - ", errors));
        }

        var limits = options.Limits ?? new EdgeLimitsOptions();
        var defaults = new HostPolicy
        {
            Name = "(defaults)",
            MaxRequestBodySize = limits.MaxRequestBodySize,
            MaxConcurrentRequests = limits.MaxConcurrentRequests,
            MaxConcurrentRequestsPerConnection = limits.MaxConcurrentRequestsPerConnection,
            MaxConcurrentRequestsPerVisitor = limits.MaxConcurrentRequestsPerVisitor,
            ResponseHeadersTimeout = limits.ResponseHeadersTimeout,
        };

        var hosts = new Dictionary<string, HostPolicy>(StringComparer.Ordinal);
        foreach (var (key, host) in options.Hosts ?? [])
        {
            if (host is not null && HostnameRules.TryNormalize(key, out var name, out _))
            {
                hosts.Add(name, new HostPolicy
                {
                    Name = name,
                    Allow = ParseRanges("", host.Allow, errors),
                    Deny = ParseRanges("", host.Deny, errors),
                    MaxRequestBodySize = host.MaxRequestBodySize ?? limits.MaxRequestBodySize,
                    MaxConcurrentRequests = host.MaxConcurrentRequests ?? limits.MaxConcurrentRequests,
                    MaxConcurrentRequestsPerConnection = limits.MaxConcurrentRequestsPerConnection,
                    MaxConcurrentRequestsPerVisitor = host.MaxConcurrentRequestsPerVisitor is { } perVisitor ? (perVisitor == 0 ? null : perVisitor) : limits.MaxConcurrentRequestsPerVisitor,
                    ResponseHeadersTimeout = host.ResponseHeadersTimeout ?? limits.ResponseHeadersTimeout,
                    RateLimiter = host.RateLimit is { } rate ? CreateRateLimiter(rate) : null,
                });
            }
        }

        return new HostPolicies(defaults, hosts);
    }

    /// <summary>Adds every problem of the options' <c>Limits</c> and <c>Hosts</c> to <paramref name="errors"/>.</summary>
    public static void Validate(EdgeOptions options, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        var limits = options.Limits ?? new EdgeLimitsOptions();
        CheckLimits(limits, errors);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, host) in options.Hosts ?? [])
        {
            var label = $"Hosts:{key}";
            if (!HostnameRules.TryNormalize(key, out var name, out var nameError))
            {
                errors.Add($"{label}: {nameError}.");
                continue;
            }

            if (host is null)
            {
                continue;
            }

            CheckCommon(label, host.MaxRequestBodySize, host.MaxConcurrentRequests, host.ResponseHeadersTimeout, errors);
            if (host.MaxConcurrentRequestsPerVisitor is < 0)
            {
                errors.Add($"{label}:MaxConcurrentRequestsPerVisitor is {host.MaxConcurrentRequestsPerVisitor}; it must be 0 (no cap) or more (or unset for the global limit).");
            }

            ParseRanges(label + ":Allow", host.Allow, errors);
            ParseRanges(label + ":Deny", host.Deny, errors);
            CheckRateLimit(label + ":RateLimit", host.RateLimit, errors);
            foreach (var mode in host.ConnectionModes ?? [])
            {
                if (Visitors.Passthrough.ConnectionModePolicy.Parse(mode) is null)
                {
                    errors.Add($"{label}:ConnectionModes: '{mode}' is not a connection mode (http, tls, tcp).");
                }
            }

            if (!names.Add(name))
            {
                errors.Add($"{label}: {name} is configured twice.");
            }
        }
    }

    /// <summary>The policy for a visitor's host (lower case, no trailing dot).</summary>
    public HostPolicy Resolve(string normalizedHost) =>
        _hosts.TryGetValue(normalizedHost, out var exact) ? exact
        : HostnameRules.WildcardFor(normalizedHost) is { } wildcard && _hosts.TryGetValue(wildcard, out var covering) ? covering
        : Defaults;

    public void Dispose()
    {
        foreach (var policy in _hosts.Values)
        {
            policy.Dispose();
        }
    }

    private static void CheckLimits(EdgeLimitsOptions limits, List<string> errors)
    {
        if (limits.MaxRequestHeadersTotalSize is < 1024 or > MaxHeadersTotalSizeCeiling)
        {
            errors.Add($"Limits:MaxRequestHeadersTotalSize is {limits.MaxRequestHeadersTotalSize}; it must be between 1024 and {MaxHeadersTotalSizeCeiling} bytes.");
        }

        if (limits.MaxRequestHeaderCount < 1)
        {
            errors.Add($"Limits:MaxRequestHeaderCount is {limits.MaxRequestHeaderCount}; it must be at least 1.");
        }

        CheckCommon("Limits", limits.MaxRequestBodySize, limits.MaxConcurrentRequests, limits.ResponseHeadersTimeout, errors);
        if (limits.MaxConcurrentRequestsPerConnection is < 1)
        {
            errors.Add($"Limits:MaxConcurrentRequestsPerConnection is {limits.MaxConcurrentRequestsPerConnection}; it must be at least 1 (or unset for no cap).");
        }

        CheckVisitorBounds(limits, errors);
        if (limits.MinRequestBodyDataRate is <= 0 || limits.MinResponseDataRate is <= 0)
        {
            errors.Add("Limits:MinRequestBodyDataRate and MinResponseDataRate must be more than 0 bytes/s (or null to disable).");
        }

        if (limits.MinDataRateGracePeriod <= TimeSpan.FromSeconds(1))
        {
            errors.Add($"Limits:MinDataRateGracePeriod is {limits.MinDataRateGracePeriod}; it must be more than 1 second (Kestrel checks rates once a second).");
        }
    }

    private static void CheckCommon(string label, long? maxBody, int? maxConcurrent, TimeSpan? headersTimeout, List<string> errors)
    {
        if (maxBody is < 0)
        {
            errors.Add($"{label}:MaxRequestBodySize is {maxBody}; it must be 0 or more (or unset for no limit).");
        }

        if (maxConcurrent is < 1)
        {
            errors.Add($"{label}:MaxConcurrentRequests is {maxConcurrent}; it must be at least 1 (or unset for no cap).");
        }

        if (headersTimeout is { } timeout && (timeout <= TimeSpan.Zero || timeout > TimeSpan.FromDays(1)))
        {
            errors.Add($"{label}:ResponseHeadersTimeout is {timeout}; it must be more than 0 and at most a day.");
        }
    }

    /// <summary>The bounds on visitors' connections, waits and idle WebSockets.</summary>
    private static void CheckVisitorBounds(EdgeLimitsOptions limits, List<string> errors)
    {
        foreach (var (name, value) in new[] { ("MaxConcurrentConnections", limits.MaxConcurrentConnections), ("MaxConnectionsPerVisitor", limits.MaxConnectionsPerVisitor), ("MaxConcurrentRequestsPerVisitor", limits.MaxConcurrentRequestsPerVisitor) })
        {
            if (value is < 1)
            {
                errors.Add($"Limits:{name} is {value}; it must be at least 1 (or null for no cap).");
            }
        }

        foreach (var (name, value) in new[] { ("RequestHeadersTimeout", limits.RequestHeadersTimeout), ("TlsHandshakeTimeout", limits.TlsHandshakeTimeout), ("StreamWaitTimeout", limits.StreamWaitTimeout) })
        {
            if (value <= TimeSpan.Zero || value > TimeSpan.FromDays(1))
            {
                errors.Add($"Limits:{name} is {value}; it must be more than 0 and at most a day.");
            }
        }

        if (limits.WebSocketIdleTimeout != Timeout.InfiniteTimeSpan && (limits.WebSocketIdleTimeout <= TimeSpan.Zero || limits.WebSocketIdleTimeout > TimeSpan.FromDays(1)))
        {
            errors.Add($"Limits:WebSocketIdleTimeout is {limits.WebSocketIdleTimeout}; it must be more than 0 and at most a day (or -00:00:00.001 to disable it).");
        }

        if (limits.ConnectionIdleTimeout != Timeout.InfiniteTimeSpan && (limits.ConnectionIdleTimeout <= TimeSpan.Zero || limits.ConnectionIdleTimeout > TimeSpan.FromDays(7)))
        {
            errors.Add($"Limits:ConnectionIdleTimeout is {limits.ConnectionIdleTimeout}; it must be more than 0 and at most 7 days (or -00:00:00.001 to disable it).");
        }

        if (limits.TunnelStreamWindowSize < 65_535)
        {
            errors.Add($"Limits:TunnelStreamWindowSize is {limits.TunnelStreamWindowSize}; it must be at least 65535 (HTTP/2's initial window) and at most 2147483647.");
        }

        if (limits.TunnelConnectionWindowSize < limits.TunnelStreamWindowSize || limits.TunnelConnectionWindowSize <= 65_535)
        {
            errors.Add($"Limits:TunnelConnectionWindowSize is {limits.TunnelConnectionWindowSize}; it must be more than 65535, at least Limits:TunnelStreamWindowSize ({limits.TunnelStreamWindowSize}), and at most 2147483647.");
        }
    }

    private static IPNetwork[] ParseRanges(string label, List<string>? ranges, List<string> errors)
    {
        var parsed = new List<IPNetwork>();
        foreach (var text in ranges ?? [])
        {
            var value = text?.Trim() ?? "";
            if (!value.Contains('/', StringComparison.Ordinal) && IPAddress.TryParse(value, out var single))
            {
                parsed.Add(new IPNetwork(single, single.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
            }
            else if (IPNetwork.TryParse(value, out var network) && IPAddress.TryParse(value.AsSpan(0, value.IndexOf('/', StringComparison.Ordinal)), out var written)
                && written.Equals(network.BaseAddress))
            {
                parsed.Add(network);
            }
            else
            {
                errors.Add($"{label}: '{value}' is not an IP address or CIDR range (like 203.0.113.0/24 or 2001:db8::/32, with no bits set past the prefix).");
            }
        }

        return [.. parsed];
    }

    private static void CheckRateLimit(string label, EdgeRateLimitOptions? rate, List<string> errors)
    {
        if (rate is null)
        {
            return;
        }

        if (!(rate.PermitsPerSecond > 0) || double.IsInfinity(rate.PermitsPerSecond))
        {
            errors.Add($"{label}:PermitsPerSecond is {rate.PermitsPerSecond.ToString(CultureInfo.InvariantCulture)}; it must be more than 0.");
        }
        else if (rate.Burst is < 1)
        {
            errors.Add($"{label}:Burst is {rate.Burst}; it must be at least 1.");
        }
    }

    private static PartitionedRateLimiter<IPAddress> CreateRateLimiter(EdgeRateLimitOptions rate)
    {
        // Whole tokens each period: at least one second, longer for rates below one a second.
        var (tokensPerPeriod, period) = rate.PermitsPerSecond >= 1
            ? ((int)Math.Round(rate.PermitsPerSecond), TimeSpan.FromSeconds(1))
            : (1, TimeSpan.FromSeconds(1 / rate.PermitsPerSecond));
        var options = new TokenBucketRateLimiterOptions
        {
            TokenLimit = rate.Burst ?? Math.Max(1, tokensPerPeriod),
            TokensPerPeriod = tokensPerPeriod,
            ReplenishmentPeriod = period,
            QueueLimit = 0,

            // The partitioned limiter replenishes every bucket from one timer; a timer per visitor would not scale.
            AutoReplenishment = false,
        };
        return PartitionedRateLimiter.Create<IPAddress, IPAddress>(visitor => RateLimitPartition.GetTokenBucketLimiter(visitor, _ => options));
    }
}
