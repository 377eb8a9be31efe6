using System.Net;
using Tunnel.Edge.Dial.Credentials;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Redial;

namespace Tunnel.Transport.Internal;

/// <summary>
/// <see cref="TunnelOptions"/> checked and turned into the parts that dial: the one place where
/// options are validated, so a configuration mistake stops the app at start with a clear message.
/// </summary>
internal sealed class TunnelSettings
{
    private TunnelSettings(int haConnections, IReadOnlyList<string> edges, EdgeDialOptions dialOptions, RedialBackoffOptions redial, EdgeSelector selector, TimeProvider time)
    {
        HaConnections = haConnections;
        Edges = edges;
        DialOptions = dialOptions;
        Redial = redial;
        Selector = selector;
        Dialer = new EdgeDialer(dialOptions, time);
    }

    public int HaConnections { get; }

    /// <summary>The configured edges as given (addresses and SRV name), for logs.</summary>
    public IReadOnlyList<string> Edges { get; }

    public EdgeDialOptions DialOptions { get; }

    public RedialBackoffOptions Redial { get; }

    public EdgeSelector Selector { get; }

    public EdgeDialer Dialer { get; }

    public static TunnelSettings Create(TunnelOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();

        if (options.HaConnections is < 1 or > 64)
        {
            problems.Add($"HaConnections must be between 1 and 64 (it is {options.HaConnections}).");
        }

        var edges = new List<EdgeAddress>();
        var srvNames = new List<string>();
        var edgeTexts = options.Edges.SelectMany(SplitList).ToList();
        foreach (var text in edgeTexts)
        {
            if (text.StartsWith(SrvPrefix, StringComparison.OrdinalIgnoreCase))
            {
                srvNames.Add(text[SrvPrefix.Length..]);
            }
            else if (EdgeAddress.TryParse(text, out var edge, out var error))
            {
                edges.Add(edge);
            }
            else
            {
                problems.Add(error);
            }
        }

        if (edges.Count == 0 && srvNames.Count == 0)
        {
            problems.Add("No edge is configured: set Tunnel:Edges (host:port, port 7844 by default, or srv:_tunnel._tcp.example.com).");
        }

        if (srvNames.Count > 1)
        {
            problems.Add($"Tunnel:Edges names {srvNames.Count} SRV names; one is supported (list the others' edges as host:port fallbacks).");
        }

        var dnsOptions = new DnsResolverOptions();
        foreach (var text in options.DnsServers.SelectMany(SplitList))
        {
            if (IPEndPoint.TryParse(text, out var server))
            {
                dnsOptions.Servers.Add(server.Port == 0 ? new IPEndPoint(server.Address, DefaultDnsPort) : server);
            }
            else
            {
                problems.Add($"Tunnel:DnsServers: '{text}' is not an IP address with an optional port.");
            }
        }

        var hostnames = new List<string>();
        foreach (var text in options.Hostnames.SelectMany(SplitList))
        {
            if (Protocol.HostnameRules.TryNormalize(text, out var hostname, out var error))
            {
                hostnames.Add(hostname);
            }
            else
            {
                problems.Add($"Tunnel:Hostnames: {error}.");
            }
        }

        if (hostnames.Count == 0)
        {
            problems.Add("No hostname is configured: set Tunnel:Hostnames to the names this app serves.");
        }

        if (options.Redial is null || options.Redial.BaseDelay <= TimeSpan.Zero || options.Redial.MaxDelay < options.Redial.BaseDelay)
        {
            problems.Add("Tunnel:Redial needs BaseDelay > 0 and MaxDelay >= BaseDelay.");
        }

        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            problems.Add("Tunnel:ConnectTimeout must be positive.");
        }

        var certificate = options.Certificate;
        if (certificate is null)
        {
            if (string.IsNullOrEmpty(options.CertificatePath))
            {
                problems.Add("No origin certificate: set Tunnel:CertificatePath (and CertificateKeyPath) to the credential issued by the edge's CA.");
            }
            else
            {
                try
                {
                    certificate = PemCertificates.LoadCertificateWithKey(options.CertificatePath, options.CertificateKeyPath);
                }
                catch (InvalidOperationException ex)
                {
                    problems.Add(ex.Message);
                }
            }
        }
        else if (!certificate.HasPrivateKey)
        {
            problems.Add("Tunnel:Certificate has no private key.");
        }

        var dialOptions = new EdgeDialOptions
        {
            ClientCertificate = certificate,
            DangerousAcceptAnyEdgeCertificate = options.DangerousAcceptAnyEdgeCertificate,
            EdgeServerName = options.EdgeServerName,
            ConnectTimeout = options.ConnectTimeout,
        };

        if (!string.IsNullOrEmpty(options.ConnectorId))
        {
            dialOptions.ConnectorId = options.ConnectorId;
        }

        dialOptions.ClientVersion = "Tunnel.Transport/" + typeof(TunnelOptions).Assembly.GetName().Version;

        if (!string.IsNullOrEmpty(options.EdgeCaPath))
        {
            try
            {
                dialOptions.TrustedEdgeCertificates.AddRange(PemCertificates.LoadBundle(options.EdgeCaPath));
            }
            catch (InvalidOperationException ex)
            {
                problems.Add(ex.Message);
            }
        }

        dialOptions.TrustedEdgeCertificates.AddRange(options.EdgeCaCertificates);
        foreach (var hostname in hostnames.Distinct())
        {
            dialOptions.Hostnames.Add(hostname);
        }

        if (problems.Count > 0)
        {
            throw new InvalidOperationException("The tunnel transport is misconfigured:" + Environment.NewLine + "  - " + string.Join(Environment.NewLine + "  - ", problems));
        }

        IEdgeDiscovery discovery;
        try
        {
            discovery = srvNames.Count == 1
                ? new SrvEdgeDiscovery(srvNames[0], new DnsSrvResolver(dnsOptions, time), edges.Count > 0 ? edges : null, time)
                : new StaticEdgeDiscovery(edges);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"The tunnel transport is misconfigured: {ex.Message}", ex);
        }

        var selector = new EdgeSelector(discovery, options.EdgeCoolDown, time);
        return new TunnelSettings(options.HaConnections, edgeTexts, dialOptions, options.Redial!, selector, time);
    }

    private const string SrvPrefix = "srv:";
    private const int DefaultDnsPort = 53;

    private static IEnumerable<string> SplitList(string value) =>
        (value ?? "").Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
