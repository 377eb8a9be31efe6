namespace Tunnel.Edge.Access;

/// <summary>
/// Rules for one hostname (section <c>Edge:Hosts:{hostname}</c>; the key is exact, <c>app.example.com</c>,
/// or a wildcard one label deep, <c>*.example.com</c>; an exact entry wins). Unset limits inherit
/// <see cref="EdgeLimitsOptions"/>.
/// </summary>
public sealed class EdgeHostOptions
{
    /// <summary>Overrides <see cref="EdgeLimitsOptions.MaxRequestBodySize"/> for this hostname.</summary>
    /// <remarks>Defaults to <c>null</c>: the global limit.</remarks>
    public long? MaxRequestBodySize { get; set; }

    /// <summary>Overrides <see cref="EdgeLimitsOptions.MaxConcurrentRequests"/> for this hostname.</summary>
    /// <remarks>Defaults to <c>null</c>: the global limit. A wildcard entry caps each hostname it covers on its own.</remarks>
    public int? MaxConcurrentRequests { get; set; }

    /// <summary>Overrides <see cref="EdgeLimitsOptions.MaxConcurrentRequestsPerVisitor"/> for this hostname.</summary>
    /// <remarks>Defaults to <c>null</c>: the global limit. 0 removes the cap for this hostname.</remarks>
    public int? MaxConcurrentRequestsPerVisitor { get; set; }

    /// <summary>Overrides <see cref="EdgeLimitsOptions.ResponseHeadersTimeout"/> for this hostname.</summary>
    /// <remarks>Defaults to <c>null</c>: the global timeout.</remarks>
    public TimeSpan? ResponseHeadersTimeout { get; set; }

    /// <summary>
    /// IP ranges (CIDR, <c>203.0.113.0/24</c>, <c>2001:db8::/32</c>, or one address) that may visit; when
    /// any is given, every other visitor gets <c>403</c>.
    /// </summary>
    /// <remarks>Defaults to empty: everyone not denied.</remarks>
    public List<string> Allow { get; set; } = [];

    /// <summary>IP ranges (CIDR or one address) that get <c>403</c>. Deny wins over allow.</summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> Deny { get; set; } = [];

    /// <summary>
    /// A token bucket per visitor IP (per IPv6 /64); requests beyond it get <c>429</c> with <c>Retry-After</c>.
    /// A wildcard entry's buckets are shared by the hostnames it covers.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: no rate limit.</remarks>
    public EdgeRateLimitOptions? RateLimit { get; set; }

    /// <summary>
    /// The modes in which origins may register this hostname to take visitors' whole connections:
    /// <c>http</c> (HTTP passthrough), <c>tls</c> (TLS passthrough), <c>tcp</c> (a TCP route). An empty list
    /// forbids them all, so the hostname takes requests only and every rule of this entry applies.
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: what <c>Edge:Connections</c> allows on the whole edge.</remarks>
    public List<string>? ConnectionModes { get; set; }

    /// <summary>
    /// Sign-in in front of this hostname: OpenID Connect at the edge, a policy, service tokens; the app
    /// gets the visitor's identity as a signed assertion. Such a hostname takes requests only (no passthrough).
    /// </summary>
    /// <remarks>Defaults to <c>null</c>: no sign-in.</remarks>
    public SignIn.EdgeHostAccessOptions? Access { get; set; }
}

/// <summary>A per-visitor-IP token bucket for one hostname entry.</summary>
public sealed class EdgeRateLimitOptions
{
    /// <summary>Sustained requests per second each visitor IP may make (fractions allowed: 0.5 is one every 2 s).</summary>
    /// <remarks>Required, more than 0.</remarks>
    public double PermitsPerSecond { get; set; }

    /// <summary>Requests a visitor IP may make at once after being idle (the bucket's size).</summary>
    /// <remarks>Defaults to <c>null</c>: one second's worth of permits, at least 1.</remarks>
    public int? Burst { get; set; }
}
