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
        RouteReadiness.CountNotReady(_routes, host) is > 0 and var notReady ? new(ForwarderError.NotReady) { NotReady = notReady } : new(ForwarderError.NoTunnel);
}
