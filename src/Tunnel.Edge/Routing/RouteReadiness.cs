namespace Tunnel.Edge.Routing;

/// <summary>Whether a route with no usable tunnel has live ones whose app reports not ready.</summary>
internal static class RouteReadiness
{
    /// <summary>The live connections of the route a visitor's host matches in <paramref name="routes"/> whose app reports not ready.</summary>
    public static int CountNotReady(RouteTable routes, string host)
    {
        ArgumentNullException.ThrowIfNull(routes);
        if (routes.MatchRoute(host) is not { } route)
        {
            return 0;
        }

        var count = 0;
        foreach (var connection in routes.ConnectionsFor(route))
        {
            if (connection.IsNotReady && connection.IsAlive)
            {
                count++;
            }
        }

        return count;
    }
}
