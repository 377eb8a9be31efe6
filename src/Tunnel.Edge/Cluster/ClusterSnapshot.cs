using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using Tunnel.Edge.Identity;
using Tunnel.Protocol;

namespace Tunnel.Edge.Cluster;

/// <summary>An edge of the cluster as it registered itself: its name, region and inter-edge address.</summary>
internal sealed record EdgeRecord(string Name, string Region, string Address);

/// <summary>
/// An immutable copy of the cluster's shared state: the edges and, for each hostname, the edges that
/// hold live tunnel connections for it. Built from the store's keys; swapped whole on each change so
/// readers need no lock.
/// </summary>
internal sealed class ClusterSnapshot
{
    private const string EdgesFolder = "edges/";
    private const string RoutesFolder = "routes/";
    private const string RevokedFolder = "revoked/";

    /// <summary>The folder of the ACME state the edges share (challenge answers, certificates, order locks).</summary>
    public const string AcmeFolder = "acme/";

    private ClusterSnapshot(long revision, ImmutableDictionary<string, EdgeRecord> edges, ImmutableDictionary<string, ImmutableArray<string>> routes, ImmutableArray<RevokedCredential> revocations,
        ImmutableDictionary<string, string> acme, ImmutableDictionary<string, ImmutableArray<string>> notReady)
    {
        Revision = revision;
        Edges = edges;
        Routes = routes;
        NotReady = notReady;
        Revocations = revocations;
        Acme = acme;
    }

    /// <summary>No edges, no routes.</summary>
    public static ClusterSnapshot Empty { get; } = new(0, ImmutableDictionary<string, EdgeRecord>.Empty, ImmutableDictionary<string, ImmutableArray<string>>.Empty, [],
        ImmutableDictionary<string, string>.Empty, ImmutableDictionary<string, ImmutableArray<string>>.Empty);

    /// <summary>
    /// The keys under <c>PREFIX acme/</c> (without that part) and their values, as the store holds them: read by
    /// <see cref="EtcdAcmeShare"/>, which knows what they mean.
    /// </summary>
    public ImmutableDictionary<string, string> Acme { get; }

    /// <summary>
    /// The credentials revoked at any edge of the cluster (published without a lease: a revocation
    /// outlives the edge that made it), every edge refuses them and closes their tunnels.
    /// </summary>
    public ImmutableArray<RevokedCredential> Revocations { get; }

    /// <summary>The store's revision this copy reflects.</summary>
    public long Revision { get; }

    /// <summary>Every registered edge by name.</summary>
    public ImmutableDictionary<string, EdgeRecord> Edges { get; }

    /// <summary>Hostname (exact or wildcard, as registered) to the names of the edges holding it.</summary>
    public ImmutableDictionary<string, ImmutableArray<string>> Routes { get; }

    /// <summary>
    /// Hostname (as registered) to the edges among its holders (<see cref="Routes"/>) that publish no
    /// ready tunnel for it (<see cref="PublishedReadiness"/>); a hostname every holder serves ready is absent.
    /// </summary>
    public ImmutableDictionary<string, ImmutableArray<string>> NotReady { get; }

    /// <summary>The edges holding a route for a visitor's host: the exact name's, else the wildcard's one label up.</summary>
    public ImmutableArray<string> EdgesFor(string host) => MatchRoute(host) is { } route ? Routes[route] : [];

    /// <summary>The route a visitor's host matches in this copy (the exact name, else the wildcard one label up), or <c>null</c>.</summary>
    public string? MatchRoute(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var name = host.TrimEnd('.').ToLowerInvariant();
        if (Routes.ContainsKey(name))
        {
            return name;
        }

        return HostnameRules.WildcardFor(name) is { } wildcard && Routes.ContainsKey(wildcard) ? wildcard : null;
    }

    /// <summary>Whether <paramref name="edgeName"/> publishes a ready tunnel for <paramref name="route"/> (a registered hostname, as <see cref="MatchRoute"/> gives it).</summary>
    public bool IsReady(string route, string edgeName) => !(NotReady.TryGetValue(route, out var notReady) && notReady.Contains(edgeName));

    /// <summary>The hostnames an edge holds, by this copy.</summary>
    public IEnumerable<string> RoutesOf(string edgeName) => Routes.Where(r => r.Value.Contains(edgeName)).Select(r => r.Key);

    /// <summary>The key under which an edge registers itself.</summary>
    public static string EdgeKey(string prefix, string edgeName) => prefix + EdgesFolder + edgeName;

    /// <summary>The key that says an edge holds a hostname (its value: <see cref="PublishedReadiness"/>).</summary>
    public static string RouteKey(string prefix, string hostname, string edgeName) => prefix + RoutesFolder + hostname + "/" + edgeName;

    /// <summary>The key that records a revoked credential for every edge.</summary>
    public static string RevokedKey(string prefix, string credentialId) => prefix + RevokedFolder + credentialId.ToUpperInvariant();

    /// <summary>The value of a revocation's key: when and why.</summary>
    public static string RevokedValue(RevokedCredential revoked)
    {
        ArgumentNullException.ThrowIfNull(revoked);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("revokedAt", revoked.RevokedAt);
            writer.WriteString("reason", revoked.Reason);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

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
        var notReady = new HashSet<(string Hostname, string Edge)>();
        var revocations = ImmutableArray.CreateBuilder<RevokedCredential>();
        var acme = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
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
                    if (!PublishedReadiness.Read(value))
                    {
                        notReady.Add((hostname, path[(slash + 1)..]));
                    }
                }
            }
            else if (rest.StartsWith(RevokedFolder, StringComparison.Ordinal) && TryReadRevocation(rest[RevokedFolder.Length..], value, out var revoked))
            {
                revocations.Add(revoked);
            }
            else if (rest.StartsWith(AcmeFolder, StringComparison.Ordinal))
            {
                acme[rest[AcmeFolder.Length..]] = value;
            }
        }

        // A route counts only with its edge's record: both live under the same lease, and without the
        // record there is no address to forward to.
        var routes = ImmutableDictionary.CreateBuilder<string, ImmutableArray<string>>(StringComparer.Ordinal);
        var notReadyRoutes = ImmutableDictionary.CreateBuilder<string, ImmutableArray<string>>(StringComparer.Ordinal);
        foreach (var (hostname, names) in holders)
        {
            var known = names.Where(edges.ContainsKey).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToImmutableArray();
            if (!known.IsEmpty)
            {
                routes[hostname] = known;
                var notReadyHolders = known.Where(name => notReady.Contains((hostname, name))).ToImmutableArray();
                if (!notReadyHolders.IsEmpty)
                {
                    notReadyRoutes[hostname] = notReadyHolders;
                }
            }
        }

        return new ClusterSnapshot(revision, edges.ToImmutable(), routes.ToImmutable(), revocations.ToImmutable(), acme.ToImmutable(), notReadyRoutes.ToImmutable());
    }

    private static bool TryReadRevocation(string id, string value, out RevokedCredential revoked)
    {
        revoked = null!;
        if (id.Length is 0 or > MaxCredentialIdLength || !id.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        // An unreadable value still revokes: the id is what matters, when and why are for people.
        var at = DateTimeOffset.UnixEpoch;
        var reason = "";
        try
        {
            using var document = JsonDocument.Parse(value);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("revokedAt", out var when) && when.ValueKind == JsonValueKind.String
                    && DateTimeOffset.TryParse(when.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var parsed))
                {
                    at = parsed;
                }

                if (root.TryGetProperty("reason", out var why) && why.ValueKind == JsonValueKind.String)
                {
                    reason = why.GetString()!;
                }
            }
        }
        catch (JsonException)
        {
        }

        revoked = new RevokedCredential(id.ToUpperInvariant(), at, reason.Length > TunnelLimits.MaxFieldLength ? reason[..TunnelLimits.MaxFieldLength] : reason);
        return true;
    }

    // A serial number is at most 20 bytes (RFC 5280): 40 hex digits; the admin API takes up to 64.
    private const int MaxCredentialIdLength = 64;

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
