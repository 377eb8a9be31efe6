using System.Globalization;
using System.Net;
using System.Text;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The status page's cluster section: the store, the peers with their round trips, routes (each marked when
/// the peer publishes no ready tunnel for it) and forwarded requests.
/// </summary>
internal static class ClusterStatus
{
    public static void Append(StringBuilder html, string self, PeerSet peers)
    {
        var store = peers.Store;
        var snapshot = store.Current;
        var ownNotReady = snapshot.RoutesOf(self).Count(r => !snapshot.IsReady(r, self));
        html.Append("<h2>Cluster</h2><p>etcd ")
            .Append(store.IsConnected ? "answers" : "<span class=\"bad\">is out of reach: serving from the last copy</span>")
            .Append(" &middot; revision ").Append(snapshot.Revision.ToString(CultureInfo.InvariantCulture))
            .Append(" &middot; ").Append(snapshot.Edges.Count).Append(" edges &middot; ")
            .Append(snapshot.RoutesOf(self).Count()).Append(" routes published by this edge");
        if (ownNotReady > 0)
        {
            html.Append(", <span class=\"bad\">").Append(ownNotReady).Append(" of them not ready</span>");
        }

        html.Append("</p>");
        if (peers.Peers.Count == 0)
        {
            html.Append("<p class=\"muted\">No other edge is registered.</p>");
            return;
        }

        html.Append("<table><tr><th>peer</th><th>region</th><th>address</th><th>round trip</th><th>state</th><th>routes</th><th>forwarded</th></tr>");
        foreach (var peer in peers.Peers.Values.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            var routes = snapshot.RoutesOf(peer.Name).Order(StringComparer.Ordinal).ToArray();
            html.Append("<tr><td><code>").Append(E(peer.Name)).Append("</code></td><td>").Append(E(peer.Record.Region))
                .Append("</td><td>").Append(E(peer.Record.Address))
                .Append("</td><td class=\"n\">").Append(peer.Rtt is { } rtt ? (rtt.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms") : "&ndash;")
                .Append("</td><td").Append(peer.IsReachable ? ">reachable" : " class=\"bad\">unreachable")
                .Append("</td><td>").Append(routes.Length == 0 ? "<span class=\"muted\">none</span>" : string.Join(", ", routes.Select(r => Route(snapshot, r, peer.Name))))
                .Append("</td><td class=\"n\">").Append(peer.Forwarded.ToString(CultureInfo.InvariantCulture)).Append("</td></tr>");
        }

        html.Append("</table>");
    }

    /// <summary>A route of a peer, marked when the peer publishes no ready tunnel for it.</summary>
    private static string Route(ClusterSnapshot snapshot, string route, string edge) =>
        "<code>" + E(route) + "</code>" + (snapshot.IsReady(route, edge) ? "" : " <span class=\"bad\">not ready</span>");

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
