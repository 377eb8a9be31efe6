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
    private TunnelSettings(int haConnections, IReadOnlyList<EdgeAddress> edges, EdgeDialOptions dialOptions, RedialBackoffOptions redial, EdgeSelector selector, TimeProvider time)
    {
        HaConnections = haConnections;
        Edges = edges;
        DialOptions = dialOptions;
        Redial = redial;
        Selector = selector;
        Dialer = new EdgeDialer(dialOptions, time);
    }

    public int HaConnections { get; }

    public IReadOnlyList<EdgeAddress> Edges { get; }

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
        foreach (var text in options.Edges.SelectMany(SplitList))
        {
            if (EdgeAddress.TryParse(text, out var edge, out var error))
            {
                edges.Add(edge);
            }
            else
            {
                problems.Add(error);
            }
        }

        if (edges.Count == 0)
        {
            problems.Add("No edge is configured: set Tunnel:Edges (host:port, port 7844 by default).");
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

        var selector = new EdgeSelector(new StaticEdgeDiscovery(edges), options.EdgeCoolDown, time);
        return new TunnelSettings(options.HaConnections, edges, dialOptions, options.Redial!, selector, time);
    }

    private static IEnumerable<string> SplitList(string value) =>
        (value ?? "").Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
