namespace HelloOrigin;

/// <summary>
/// <c>/metrics</c>: the tunnel's meter (<c>Tunnel.Transport</c>) in the Prometheus text format, for a
/// scrape job. Only requests whose Host is a loopback address reach it, so it is served on a local
/// listener (<c>--urls http://127.0.0.1:9464</c>; IPv6 literals are not matched: routing cannot parse <c>[::1]</c> as a host) and never through the tunnel: the edge routes
/// visitors by their Host, and no route is a loopback address.
/// </summary>
public static class HelloMetrics
{
    /// <summary>Maps <c>/metrics</c> for loopback hosts.</summary>
    public static IEndpointConventionBuilder MapHelloMetrics(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapPrometheusMetrics("/metrics", "Tunnel.Transport").RequireHost("127.0.0.1:*", "localhost:*");
}
