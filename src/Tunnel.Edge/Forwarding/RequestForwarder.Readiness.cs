using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Forwarding;

/// <summary>Telling "the app is not ready" from "no tunnel" when no connection could take a request.</summary>
internal sealed partial class RequestForwarder
{
    /// <summary>
    /// The failure for a host that no tunnel connection here (nor a peer edge) took: the route's app is
    /// not ready when live connections hold it and report not ready, else the host has no tunnel.
    /// </summary>
    private ForwarderFailure NoTunnelFailure(string host) =>
        CountNotReady(_routes, host) is > 0 and var notReady ? new(ForwarderError.NotReady) { NotReady = notReady } : new(ForwarderError.NoTunnel);

    /// <summary>The live connections of the route a visitor's host matches whose app reports not ready.</summary>
    internal static int CountNotReady(RouteTable routes, string host)
    {
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
