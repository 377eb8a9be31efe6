using System.Text.Json;
using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The value of a route key (<c>PREFIX routes/{hostname}/{edge}</c>): whether the edge holds at least one
/// ready tunnel for the hostname, as <c>{"ready":true}</c> or <c>{"ready":false}</c>. Peers send a request
/// whose host has no ready tunnel here to an edge that publishes ready, and to one that does not only when
/// none does.
/// </summary>
/// <remarks>
/// Only an explicit <c>"ready": false</c> reads as not ready. An empty value (an edge from before
/// readiness was published) and a value this edge cannot read (a newer edge's format, or damage) read
/// as ready: the key's presence says the edge holds the route, which is all forwarding used to know,
/// so such an edge is chosen as it always was rather than passed over on a guess.
/// </remarks>
internal static class PublishedReadiness
{
    private const string ReadyValue = "{\"ready\":true}";
    private const string NotReadyValue = "{\"ready\":false}";

    /// <summary>The value an edge writes under its route key.</summary>
    public static string Value(bool ready) => ready ? ReadyValue : NotReadyValue;

    /// <summary>Reads a route key's value: <c>false</c> only for an object whose <c>ready</c> is <c>false</c>.</summary>
    public static bool Read(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length == 0 || value == ReadyValue)
        {
            return true;
        }

        if (value == NotReadyValue)
        {
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(value);
            var root = document.RootElement;
            return root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("ready", out var ready) || ready.ValueKind != JsonValueKind.False;
        }
        catch (JsonException)
        {
            return true;
        }
    }

    /// <summary>Whether this edge has a tunnel connection for <paramref name="hostname"/> (as registered) that takes new requests now.</summary>
    public static bool HasReadyTunnel(RouteTable routes, string hostname)
    {
        ArgumentNullException.ThrowIfNull(routes);
        foreach (var connection in routes.ConnectionsFor(hostname))
        {
            if (connection.IsUsable)
            {
                return true;
            }
        }

        return false;
    }
}
