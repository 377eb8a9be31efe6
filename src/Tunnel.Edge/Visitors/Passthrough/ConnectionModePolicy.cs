using Tunnel.Edge.Telemetry;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// Which connection routes origins may register on this edge: the edge-wide switches of
/// <see cref="ConnectionRouteOptions"/>, narrowed per hostname by <c>Edge:Hosts:{host}:ConnectionModes</c>.
/// </summary>
internal sealed class ConnectionModePolicy
{
    private readonly EdgeOptions _options;
    private readonly HashSet<string> _tcpHostnames;
    private readonly Dictionary<string, (string Key, HashSet<ConnectionMode> Modes)> _perHost = new(StringComparer.Ordinal);

    public ConnectionModePolicy(EdgeOptions options)
    {
        _options = options;
        _tcpHostnames = options.Connections.TcpRoutes
            .Select(r => HostnameRules.TryNormalize(r.Hostname, out var name, out _) ? name : r.Hostname)
            .ToHashSet(StringComparer.Ordinal);
        foreach (var (key, host) in options.Hosts ?? [])
        {
            // A host behind the edge's sign-in takes requests only: the edge does not see a passthrough route's requests.
            if ((host?.ConnectionModes ?? (host?.Access is not null ? [] : null)) is { } modes && HostnameRules.TryNormalize(key, out var name, out _))
            {
                _perHost[name] = (key, modes.Select(Parse).OfType<ConnectionMode>().ToHashSet());
            }
        }
    }

    /// <summary>A mode's name in configuration (<c>http</c>, <c>tls</c>, <c>tcp</c>, any case), or <c>null</c>.</summary>
    public static ConnectionMode? Parse(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "http" => ConnectionMode.Http,
        "tls" => ConnectionMode.Tls,
        "tcp" => ConnectionMode.Tcp,
        _ => null,
    };

    /// <summary>Why a route for <paramref name="hostname"/> (normalized) in <paramref name="mode"/> may not register, or <c>null</c> if it may.</summary>
    public string? Refuse(string hostname, ConnectionMode mode)
    {
        var edgeWide = mode switch
        {
            ConnectionMode.Http when !_options.Connections.HttpPassthrough =>
                $"Edge {_options.Name} takes no HTTP passthrough routes (Edge:Connections:HttpPassthrough is off); '{hostname}' can register for requests instead.",
            ConnectionMode.Tls when !_options.Connections.TlsPassthrough =>
                $"Edge {_options.Name} takes no TLS passthrough routes (Edge:Connections:TlsPassthrough is off); '{hostname}' can register for requests instead.",
            ConnectionMode.Tcp when !_tcpHostnames.Contains(hostname) =>
                $"Edge {_options.Name} has no TCP route for '{hostname}' (Edge:Connections:TcpRoutes names the hostnames that may take one, each with its port).",
            _ => null,
        };
        if (edgeWide is not null)
        {
            return edgeWide;
        }

        // The exact entry, else the wildcard one label up, as for the host's other rules.
        var entry = _perHost.TryGetValue(hostname, out var exact) ? exact
            : HostnameRules.WildcardFor(hostname) is { } wildcard && _perHost.TryGetValue(wildcard, out var covering) ? covering
            : ((string Key, HashSet<ConnectionMode> Modes)?)null;
        return entry is { } rule && !rule.Modes.Contains(mode)
            ? $"Edge {_options.Name} does not let '{hostname}' take {ConnectionRouteMetrics.Name(mode)} connections (Edge:Hosts:{rule.Key}:ConnectionModes)."
            : null;
    }
}
