using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// Which certificates may speak on the inter-edge port: issued by the edge CA and valid both for
/// server and for client authentication. Origin certificates (client only) and visitor site
/// certificates (server only) come from the same CA, so the two uses together are what marks an edge.
/// </summary>
internal static class PeerCertificates
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>Whether a certificate is fit to identify this edge to peers; <paramref name="problem"/> says why not.</summary>
    public static bool IsUsableForBothEnds(X509Certificate2 certificate, out string problem)
    {
        var usages = Usages(certificate);
        if (!usages.Contains(ServerAuthOid) || !usages.Contains(ClientAuthOid))
        {
            problem = "it is not valid for both server and client authentication (issue one with 'tunnel-edge issue-edge')";
            return false;
        }

        problem = "";
        return true;
    }

    /// <summary>Whether a peer's certificate chains to one of the edge CAs and is an edge certificate.</summary>
    public static bool IsPeerCertificate(X509Certificate2 certificate, X509Certificate2Collection trustedCas, out string problem)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(trustedCas);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trustedCas);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (!chain.Build(certificate))
        {
            problem = "it is not issued by the edge CA: " + string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()));
            return false;
        }

        return IsUsableForBothEnds(certificate, out problem);
    }

    private static HashSet<string> Usages(X509Certificate2 certificate) =>
        certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>()
            .SelectMany(e => e.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>())
            .Select(o => o.Value ?? "")
            .ToHashSet(StringComparer.Ordinal);
}
