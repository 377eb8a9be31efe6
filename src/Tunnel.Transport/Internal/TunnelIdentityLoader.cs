using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Dial.Credentials;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Reads the origin's identity (certificate, pinned edge CAs, edges, hostnames) from the options and
/// the credential file: each explicit option wins over the file's value. Every problem found is
/// added to the caller's list, so a start or a reload names all of them at once.
/// </summary>
internal static class TunnelIdentityLoader
{
    private const string SrvPrefix = "srv:";
    private const string EdgesOption = "Tunnel:Edges";

    /// <summary>The identity, or <c>null</c> when any problem was added to <paramref name="problems"/>.</summary>
    /// <param name="options">The options.</param>
    /// <param name="problems">Where problems are added.</param>
    /// <param name="hasConnectionRoutes">Whether <c>ListenTunnel</c> routes are declared: then no request hostname is needed.</param>
    public static TunnelIdentity? Load(TunnelOptions options, List<string> problems, bool hasConnectionRoutes = false)
    {
        var before = problems.Count;
        var credentialPath = options.CredentialPath;
        var credential = ReadCredentialFile(credentialPath, problems);

        // An unreadable credential file is the one problem to report, not everything it would have supplied.
        var credentialFailed = !string.IsNullOrEmpty(credentialPath) && credential is null;
        var edges = ReadEdges(options, credential, credentialFailed, problems);
        var hostnames = ReadHostnames(options, credential, credentialFailed || hasConnectionRoutes, problems);
        var (certificate, source) = ReadCertificate(options, credential, problems);
        var edgeCas = ReadEdgeCas(options, credential, problems);
        var edgeServerName = options.EdgeServerName ?? credential?.EdgeServerName;
        if (problems.Count > before || certificate is null)
        {
            return null;
        }

        var fingerprint = string.Join(
            "|",
            certificate.Thumbprint,
            string.Join(",", edgeCas.Select(ca => ca.Thumbprint).Order(StringComparer.Ordinal)),
            string.Join(",", edges.Texts),
            edgeServerName ?? "",
            string.Join(",", hostnames));
        return new TunnelIdentity(certificate, edgeCas, edges.Texts, edges.Addresses, edges.SrvName, edgeServerName, hostnames, source, fingerprint);
    }

    /// <summary>A configured list: entries separated by commas or semicolons, trimmed.</summary>
    public static IEnumerable<string> SplitList(string value) =>
        (value ?? "").Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static TunnelCredential? ReadCredentialFile(string? credentialPath, List<string> problems)
    {
        if (string.IsNullOrEmpty(credentialPath))
        {
            return null;
        }

        try
        {
            return TunnelCredential.Load(credentialPath);
        }
        catch (InvalidDataException ex)
        {
            problems.Add(ex.Message);
            return null;
        }
    }

    /// <summary>Tunnel:Edges, or else the credential file's edges: addresses and at most one SRV name.</summary>
    private static EdgeList ReadEdges(TunnelOptions options, TunnelCredential? credential, bool credentialFailed, List<string> problems)
    {
        var edgeTexts = options.Edges.SelectMany(SplitList).ToList();
        var edgeSource = EdgesOption;
        if (edgeTexts.Count == 0 && credential is not null)
        {
            edgeTexts = credential.Edges.SelectMany(SplitList).ToList();
            edgeSource = $"The credential file '{options.CredentialPath}' edges";
        }

        var edges = new List<EdgeAddress>();
        var srvNames = new List<string>();
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
                problems.Add(edgeSource == EdgesOption ? error : $"{edgeSource}: {error}");
            }
        }

        if (edgeTexts.Count == 0 && !credentialFailed)
        {
            problems.Add(credential is null
                ? "No edge is configured: set Tunnel:Edges (host:port, port 7844 by default, or srv:_tunnel._tcp.example.com)."
                : $"No edge is configured: the credential file '{options.CredentialPath}' names none; set Tunnel:Edges (host:port, port 7844 by default, or srv:_tunnel._tcp.example.com).");
        }

        if (srvNames.Count > 1)
        {
            problems.Add($"{edgeSource} names {srvNames.Count} SRV names; one is supported (list the others' edges as host:port fallbacks).");
        }

        return new EdgeList(edgeTexts, edges, srvNames.Count == 1 ? srvNames[0] : null);
    }

    /// <summary>Tunnel:Hostnames, or else every name the credential covers, normalized and without repeats.</summary>
    private static List<string> ReadHostnames(TunnelOptions options, TunnelCredential? credential, bool noneNeeded, List<string> problems)
    {
        var hostnameTexts = options.Hostnames.SelectMany(SplitList).ToList();
        var hostnameSource = "Tunnel:Hostnames";
        if (hostnameTexts.Count == 0 && credential is not null)
        {
            // Wildcards as wildcard routes: the edge routes a.example.com to a '*.example.com' registration.
            hostnameTexts = [.. credential.Hostnames];
            hostnameSource = $"The credential file '{options.CredentialPath}' hostnames";
        }

        var hostnames = new List<string>();
        foreach (var text in hostnameTexts)
        {
            if (Protocol.HostnameRules.TryNormalize(text, out var hostname, out var error))
            {
                hostnames.Add(hostname);
            }
            else
            {
                problems.Add($"{hostnameSource}: {error}.");
            }
        }

        // Not needed when the credential file failed (that is the problem to report) or ListenTunnel routes are declared.
        if (hostnameTexts.Count == 0 && !noneNeeded)
        {
            problems.Add(credential is null
                ? "No hostname is configured: set Tunnel:Hostnames to the names this app serves."
                : $"No hostname is configured: the credential file '{options.CredentialPath}' names none; set Tunnel:Hostnames to the names this app serves.");
        }

        return hostnames.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>The client certificate: Tunnel:Certificate, else Tunnel:CertificatePath, else the credential file's; and where it came from.</summary>
    private static (X509Certificate2? Certificate, string Source) ReadCertificate(TunnelOptions options, TunnelCredential? credential, List<string> problems)
    {
        if (options.Certificate is { } certificate)
        {
            if (!certificate.HasPrivateKey)
            {
                problems.Add("Tunnel:Certificate has no private key.");
            }

            return (certificate, "Tunnel:Certificate");
        }

        if (!string.IsNullOrEmpty(options.CertificatePath))
        {
            try
            {
                return (PemCertificates.LoadCertificateWithKey(options.CertificatePath, options.CertificateKeyPath), options.CertificatePath);
            }
            catch (InvalidOperationException ex)
            {
                problems.Add(ex.Message);
                return (null, options.CertificatePath);
            }
        }

        if (credential is not null)
        {
            try
            {
                return (credential.CreateCertificate(options.CredentialPath!), options.CredentialPath!);
            }
            catch (InvalidDataException ex)
            {
                problems.Add(ex.Message);
                return (null, options.CredentialPath!);
            }
        }

        if (string.IsNullOrEmpty(options.CredentialPath))
        {
            problems.Add("No origin certificate: set Tunnel:CredentialPath to the credential file tunnel-edge issue writes, or Tunnel:CertificatePath (and CertificateKeyPath) to a certificate issued by the edge's CA.");
        }

        return (null, "Tunnel:Certificate");
    }

    /// <summary>The pinned edge CAs: Tunnel:EdgeCaPath and Tunnel:EdgeCaCertificates, or else the credential file's.</summary>
    private static X509Certificate2Collection ReadEdgeCas(TunnelOptions options, TunnelCredential? credential, List<string> problems)
    {
        var edgeCas = new X509Certificate2Collection();
        if (!string.IsNullOrEmpty(options.EdgeCaPath))
        {
            try
            {
                edgeCas.AddRange(PemCertificates.LoadBundle(options.EdgeCaPath));
            }
            catch (InvalidOperationException ex)
            {
                problems.Add(ex.Message);
            }
        }

        edgeCas.AddRange(options.EdgeCaCertificates);
        if (string.IsNullOrEmpty(options.EdgeCaPath) && options.EdgeCaCertificates.Count == 0 && credential is not null)
        {
            try
            {
                edgeCas.AddRange(credential.CreateEdgeCas(options.CredentialPath!));
            }
            catch (InvalidDataException ex)
            {
                problems.Add(ex.Message);
            }
        }

        return edgeCas;
    }

    private sealed record EdgeList(IReadOnlyList<string> Texts, IReadOnlyList<EdgeAddress> Addresses, string? SrvName);
}
