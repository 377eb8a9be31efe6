using System.Globalization;
using System.Net;
using System.Text;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Admin;

/// <summary>
/// The admin port's <c>/</c>: one server-rendered HTML page that reloads itself every few seconds,
/// with the routes and their connectors' connections, the connectors, the last minute's requests and
/// the recent connection events. Everything shown is HTML-encoded: hostnames, connector ids and
/// refusal messages come from origins.
/// </summary>
internal sealed class StatusPage(EdgeOptions options, RouteTable routes, EdgeConnectionEvents events, RecentRequests requests, TimeProvider time, Cluster.PeerSet? peers = null, RegistrationPolicy? policy = null, Telemetry.ConnectionRouteMetrics? connectionRoutes = null, Dns.DnsPublisher? dns = null, Certificates.Acme.AcmeCertificates? acme = null)
{
    // Often enough to watch a redeploy roll over, rare enough to cost the edge nothing.
    private const int RefreshSeconds = 5;

    private readonly DateTimeOffset _started = time.GetUtcNow();

    public string Render()
    {
        var now = time.GetUtcNow();
        var connections = routes.Connections();
        var html = new StringBuilder();
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta http-equiv=\"refresh\" content=\"").Append(RefreshSeconds).Append("\">")
            .Append("<title>").Append(E(options.Name)).Append(" &middot; tunnel edge</title><style>")
            .Append("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}")
            .Append("table{border-collapse:collapse}th,td{text-align:left;padding:.2em .8em;border-bottom:1px solid #ddd;vertical-align:top}")
            .Append("td.n{text-align:right}code{background:#f3f3f3;padding:0 .2em}.bad{color:#b00}.muted{color:#777}")
            .Append("</style></head><body>");
        html.Append("<h1>Edge <code>").Append(E(options.Name)).Append("</code>");
        if (options.Region.Length > 0)
        {
            html.Append(" in <code>").Append(E(options.Region)).Append("</code>");
        }

        html.Append("</h1><p>Up ").Append(E(Duration(now - _started))).Append(" &middot; ")
            .Append(connections.Count).Append(" tunnel connections from ")
            .Append(connections.Select(c => c.ConnectorId).Distinct(StringComparer.Ordinal).Count()).Append(" connectors &middot; ")
            .Append(connections.Sum(c => c.InFlight)).Append(" requests in flight &middot; ")
            .Append("<a href=\"metrics\">metrics</a> &middot; refreshes every ").Append(RefreshSeconds).Append(" s</p>");

        AppendRoutes(html, now);
        AppendOverlaps(html);
        if (peers is not null)
        {
            Cluster.ClusterStatus.Append(html, options.Name, peers);
        }

        Dns.DnsServices.AppendStatus(html, dns);
        if (acme is not null)
        {
            Certificates.Acme.AcmeStatus.Append(html, acme, now);
        }

        AppendConnectors(html, connections, now);
        AppendConnectionRoutes(html);
        AppendRequests(html);
        AppendEvents(html);
        html.Append("</body></html>\n");
        return html.ToString();
    }

    private void AppendRoutes(StringBuilder html, DateTimeOffset now)
    {
        html.Append("<h2>Routes</h2>");
        var table = routes.Snapshot();
        if (table.Count == 0)
        {
            html.Append("<p class=\"muted\">No origin is connected.</p>");
            return;
        }

        html.Append("<table><tr><th>hostname</th><th>connector</th><th>connection</th><th>remote</th><th>slot</th><th>uptime</th><th>in flight</th><th>requests</th><th>state</th></tr>");
        foreach (var (hostname, route) in table.OrderBy(r => r.Key, StringComparer.Ordinal))
        {
            var first = true;
            foreach (var connector in route.GroupBy(c => c.ConnectorId, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var firstOfConnector = true;
                foreach (var connection in connector.OrderBy(c => c.ConnectionIndex))
                {
                    html.Append("<tr><td>").Append(first ? "<code>" + E(hostname) + "</code>" : "")
                        .Append("</td><td>").Append(firstOfConnector ? "<code>" + E(connector.Key) + "</code>" : "")
                        .Append("</td>");
                    AppendConnection(html, connection, now);
                    html.Append("</tr>");
                    first = false;
                    firstOfConnector = false;
                }
            }
        }

        html.Append("</table>");
    }

    /// <summary>Hostnames two credentials cover: pooled connections, or a claim refusing one of them. Shown only when there are some.</summary>
    private void AppendOverlaps(StringBuilder html)
    {
        if (policy?.Overlaps() is not { Count: > 0 } overlaps)
        {
            return;
        }

        html.Append("<h2>Credential overlaps</h2><table><tr><th>hostname</th><th>credential</th><th>also covered by</th><th>as</th><th>what it means</th></tr>");
        foreach (var overlap in overlaps.OrderBy(o => o.Hostname, StringComparer.Ordinal))
        {
            html.Append("<tr><td><code>").Append(E(overlap.Hostname))
                .Append("</code></td><td><code>").Append(E(CredentialOverlaps.Describe(overlap.Holder))).Append("</code>").Append(overlap.Holder.Exclusive ? " exclusive" : "")
                .Append("</td><td><code>").Append(E(CredentialOverlaps.Describe(overlap.Other))).Append("</code>").Append(overlap.Other.Exclusive ? " exclusive" : "")
                .Append("</td><td><code>").Append(E(overlap.OtherName))
                .Append("</code></td><td class=\"bad\">warning: ").Append(E(overlap.Message)).Append("</td></tr>");
        }

        html.Append("</table>");
    }

    private static void AppendConnection(StringBuilder html, TunnelConnection connection, DateTimeOffset now)
    {
        var state = connection.Closed.IsCompleted ? "closed" : connection.IsDraining ? "draining" : connection.IsSilent ? "silent" : connection.IsNotReady ? "not ready" : "ready";
        html.Append("<td><code>").Append(E(connection.Id)).Append("</code></td><td>").Append(E(connection.Remote?.ToString() ?? "?"))
            .Append("</td><td class=\"n\">").Append(connection.ConnectionIndex)
            .Append("</td><td>").Append(E(Duration(now - connection.ConnectedAt)))
            .Append("</td><td class=\"n\">").Append(connection.InFlight)
            .Append("</td><td class=\"n\">").Append(connection.Requests)
            .Append("</td><td").Append(state == "ready" ? ">" : " class=\"bad\">").Append(state).Append("</td>");
    }

    private static void AppendConnectors(StringBuilder html, IReadOnlyCollection<TunnelConnection> connections, DateTimeOffset now)
    {
        html.Append("<h2>Connectors (origin replicas)</h2>");
        if (connections.Count == 0)
        {
            html.Append("<p class=\"muted\">None.</p>");
            return;
        }

        html.Append("<table><tr><th>connector</th><th>connections</th><th>hostnames</th><th>remote addresses</th><th>connected for</th><th>in flight</th></tr>");
        foreach (var connector in connections.GroupBy(c => c.ConnectorId, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            html.Append("<tr><td><code>").Append(E(connector.Key)).Append("</code></td><td class=\"n\">").Append(connector.Count())
                .Append("</td><td>").Append(E(string.Join(", ", connector.SelectMany(c => c.Hostnames.Concat(c.ConnectionRoutes.Select(r => $"{r.Hostname} ({Telemetry.ConnectionRouteMetrics.Name(r.Mode)})"))).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))))
                .Append("</td><td>").Append(E(string.Join(", ", connector.Select(c => c.Remote is IPEndPoint ip ? ip.Address.ToString() : c.Remote?.ToString() ?? "?").Distinct(StringComparer.Ordinal))))
                .Append("</td><td>").Append(E(Duration(now - connector.Min(c => c.ConnectedAt))))
                .Append("</td><td class=\"n\">").Append(connector.Sum(c => c.InFlight)).Append("</td></tr>");
        }

        html.Append("</table>");
    }

    /// <summary>Visitor connections carried whole, per route and mode; shown once a route has had one.</summary>
    private void AppendConnectionRoutes(StringBuilder html)
    {
        if (connectionRoutes?.Snapshot() is not { Count: > 0 } snapshot)
        {
            return;
        }

        html.Append("<h2>Connection routes (passthrough, TCP)</h2><table><tr><th>route</th><th>mode</th><th>open</th><th>carried</th><th>not carried</th><th>bytes from visitors</th><th>bytes to visitors</th></tr>");
        foreach (var route in snapshot)
        {
            html.Append("<tr><td><code>").Append(E(route.Route)).Append("</code></td><td>").Append(route.Mode)
                .Append("</td><td class=\"n\">").Append(route.Open)
                .Append("</td><td class=\"n\">").Append(route.Carried)
                .Append("</td><td class=\"n").Append(route.Refused > 0 ? " bad\">" : "\">").Append(route.Refused)
                .Append("</td><td class=\"n\">").Append(route.Received.ToString("N0", CultureInfo.InvariantCulture))
                .Append("</td><td class=\"n\">").Append(route.Transmitted.ToString("N0", CultureInfo.InvariantCulture)).Append("</td></tr>");
        }

        html.Append("</table>");
    }

    private void AppendRequests(StringBuilder html)
    {
        html.Append("<h2>Requests in the last minute</h2>");
        var counts = requests.Snapshot();
        if (counts.Count == 0)
        {
            html.Append("<p class=\"muted\">None.</p>");
            return;
        }

        html.Append("<table><tr><th>route</th><th>total</th><th>per second</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>");
        foreach (var route in counts)
        {
            html.Append("<tr><td>").Append(route.Route is null ? "<span class=\"muted\">(no route)</span>" : "<code>" + E(route.Route) + "</code>")
                .Append("</td><td class=\"n\">").Append(route.Total)
                .Append("</td><td class=\"n\">").Append((route.Total / RecentRequests.Window.TotalSeconds).ToString("0.##", CultureInfo.InvariantCulture)).Append("</td>");
            foreach (var count in route.ByStatusClass)
            {
                html.Append("<td class=\"n\">").Append(count).Append("</td>");
            }

            html.Append("</tr>");
        }

        html.Append("</table>");
    }

    private void AppendEvents(StringBuilder html)
    {
        html.Append("<h2>Recent connection events</h2>");
        var recent = events.Recent;
        if (recent.Count == 0)
        {
            html.Append("<p class=\"muted\">None yet.</p>");
            return;
        }

        html.Append("<table><tr><th>time (UTC)</th><th>event</th><th>remote</th><th>connection</th><th>connector</th><th>hostnames</th><th>reason</th><th>detail</th></tr>");
        foreach (var e in recent.Reverse())
        {
            html.Append("<tr><td>").Append(e.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture))
                .Append("</td><td").Append(e.Kind == EdgeConnectionEventKind.Refused ? " class=\"bad\">" : ">").Append(e.Kind.ToString().ToLowerInvariant())
                .Append("</td><td>").Append(E(e.Remote))
                .Append("</td><td>").Append(E(e.ConnectionId ?? ""))
                .Append("</td><td>").Append(E(e.ConnectorId ?? ""))
                .Append("</td><td>").Append(E(e.Hostnames))
                .Append("</td><td>").Append(E(e.Reason))
                .Append("</td><td>").Append(E(e.Detail)).Append("</td></tr>");
        }

        html.Append("</table>");
    }

    private static string Duration(TimeSpan span) =>
        span.TotalDays >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalDays}d {span.Hours}h")
        : span.TotalHours >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}h {span.Minutes}m")
        : span.TotalMinutes >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalMinutes}m {span.Seconds}s")
        : string.Create(CultureInfo.InvariantCulture, $"{Math.Max(0, span.TotalSeconds):0}s");

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
