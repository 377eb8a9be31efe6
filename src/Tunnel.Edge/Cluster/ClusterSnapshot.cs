using System.Collections.Immutable;
using System.Text.Json;
using Tunnel.Protocol;

namespace Tunnel.Edge.Cluster;

/// <summary>An edge of the cluster as it registered itself: its name, region and inter-edge address.</summary>
public sealed record EdgeRecord(string Name, string Region, string Address);

/// <summary>
/// An immutable copy of the cluster's shared state: the edges and, for each hostname, the edges that
/// hold live tunnel connections for it. Built from the store's keys; swapped whole on each change so
/// readers need no lock.
/// </summary>
public sealed class ClusterSnapshot
{
    private const string EdgesFolder = "edges/";
    private const string RoutesFolder = "routes/";

    private ClusterSnapshot(long revision, ImmutableDictionary<string, EdgeRecord> edges, ImmutableDictionary<string, ImmutableArray<string>> routes)
    {
        Revision = revision;
        Edges = edges;
        Routes = routes;
    }

    /// <summary>No edges, no routes.</summary>
    public static ClusterSnapshot Empty { get; } = new(0, ImmutableDictionary<string, EdgeRecord>.Empty, ImmutableDictionary<string, ImmutableArray<string>>.Empty);

    /// <summary>The store's revision this copy reflects.</summary>
    public long Revision { get; }

    /// <summary>Every registered edge by name.</summary>
    public ImmutableDictionary<string, EdgeRecord> Edges { get; }

    /// <summary>Hostname (exact or wildcard, as registered) to the names of the edges holding it.</summary>
    public ImmutableDictionary<string, ImmutableArray<string>> Routes { get; }

    /// <summary>The edges holding a route for a visitor's host: the exact name's, else the wildcard's one label up.</summary>
    public ImmutableArray<string> EdgesFor(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var name = host.TrimEnd('.').ToLowerInvariant();
        if (Routes.TryGetValue(name, out var exact))
        {
            return exact;
        }

        return HostnameRules.WildcardFor(name) is { } wildcard && Routes.TryGetValue(wildcard, out var matched) ? matched : [];
    }

    /// <summary>The hostnames an edge holds, by this copy.</summary>
    public IEnumerable<string> RoutesOf(string edgeName) => Routes.Where(r => r.Value.Contains(edgeName)).Select(r => r.Key);

    /// <summary>The key under which an edge registers itself.</summary>
    public static string EdgeKey(string prefix, string edgeName) => prefix + EdgesFolder + edgeName;

    /// <summary>The key that says an edge holds a hostname.</summary>
    public static string RouteKey(string prefix, string hostname, string edgeName) => prefix + RoutesFolder + hostname + "/" + edgeName;

    /// <summary>The value of an edge's key.</summary>
    public static string EdgeValue(EdgeRecord edge)
    {
        ArgumentNullException.ThrowIfNull(edge);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("region", edge.Region);
            writer.WriteString("address", edge.Address);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>
    /// Builds a copy from every key under <paramref name="prefix"/>. Keys this version does not know, or
    /// cannot read, are left out rather than failing the copy: another edge may be newer.
    /// </summary>
    public static ClusterSnapshot From(long revision, string prefix, IEnumerable<KeyValuePair<string, string>> pairs)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(pairs);
        var edges = ImmutableDictionary.CreateBuilder<string, EdgeRecord>(StringComparer.Ordinal);
        var holders = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (key, value) in pairs)
        {
            if (!key.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var rest = key[prefix.Length..];
            if (rest.StartsWith(EdgesFolder, StringComparison.Ordinal))
            {
                var name = rest[EdgesFolder.Length..];
                if (name.Length > 0 && TryReadEdge(name, value, out var edge))
                {
                    edges[name] = edge;
                }
            }
            else if (rest.StartsWith(RoutesFolder, StringComparison.Ordinal))
            {
                var path = rest[RoutesFolder.Length..];
                var slash = path.LastIndexOf('/');
                if (slash > 0 && slash < path.Length - 1)
                {
                    var hostname = path[..slash];
                    if (!holders.TryGetValue(hostname, out var list))
                    {
                        holders[hostname] = list = [];
                    }

                    list.Add(path[(slash + 1)..]);
                }
            }
        }

        // A route counts only with its edge's record: both live under the same lease, and without the
        // record there is no address to forward to.
        var routes = ImmutableDictionary.CreateBuilder<string, ImmutableArray<string>>(StringComparer.Ordinal);
        foreach (var (hostname, names) in holders)
        {
            var known = names.Where(edges.ContainsKey).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToImmutableArray();
            if (!known.IsEmpty)
            {
                routes[hostname] = known;
            }
        }

        return new ClusterSnapshot(revision, edges.ToImmutable(), routes.ToImmutable());
    }

    private static bool TryReadEdge(string name, string value, out EdgeRecord edge)
    {
        edge = null!;
        try
        {
            using var document = JsonDocument.Parse(value);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("address", out var address) || address.GetString() is not { Length: > 0 } text)
            {
                return false;
            }

            var region = root.TryGetProperty("region", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            edge = new EdgeRecord(name, region, text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
