using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Bench;

/// <summary>The edge's CA and an origin certificate for the benchmark host, made with tunnel-edge's own CLI.</summary>
internal sealed class Pki
{
    private Pki(string directory)
    {
        Directory = directory;
    }

    public string Directory { get; }

    public string CaCertificate => Path.Combine(Directory, "ca.pem");

    public string OriginCertificate => Path.Combine(Directory, "origin.pem");

    public string OriginKey => Path.Combine(Directory, "origin.key");

    /// <summary>The app's own certificate for TLS (direct Kestrel HTTPS and TLS passthrough): self-signed, ECDSA P-256, for <see cref="Setups.TlsHostname"/>.</summary>
    public string SiteCertificate => Path.Combine(Directory, "site.pem");

    public string SiteKey => Path.Combine(Directory, "site.key");

    public static async Task<Pki> CreateAsync(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var edge = Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll");
        await Tool.RunCheckedAsync("dotnet", [edge, "init", "--dir", directory, "--force"], TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        await Tool.RunCheckedAsync("dotnet", [edge, "issue", "--dir", directory, "--domain", Setups.Hostname, "--domain", Setups.PassthroughHostname,
            "--domain", Setups.TlsHostname, "--domain", Setups.TcpHostname, "--pem-out", Path.Combine(directory, "origin")], TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        var pki = new Pki(directory);
        CreateSiteCertificate(pki);
        return pki;
    }

    private static void CreateSiteCertificate(Pki pki)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + Setups.TlsHostname, key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(Setups.TlsHostname);
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        File.WriteAllText(pki.SiteCertificate, certificate.ExportCertificatePem());
        File.WriteAllText(pki.SiteKey, key.ExportPkcs8PrivateKeyPem());
    }
}
