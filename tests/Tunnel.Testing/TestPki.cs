using System.Net;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Identity;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Testing;

/// <summary>A fresh edge CA, edge server certificate and origin certificates, written as PEM files in a temp directory.</summary>
public sealed class TestPki : IDisposable
{
    public TestPki()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("tunnel-test-").FullName;
        Ca = CertificateIssuer.CreateCertificateAuthority("Test Edge CA", TimeSpan.FromDays(1));
        CaPath = Path.Combine(Directory, "ca.pem");
        CertificateIssuer.WritePem(Ca, CaPath, Path.Combine(Directory, "ca.key"));
        using var edge = CertificateIssuer.IssueServerCertificate(Ca, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1));
        EdgeCertificatePath = Path.Combine(Directory, "edge.pem");
        EdgeKeyPath = Path.Combine(Directory, "edge.key");
        CertificateIssuer.WritePem(edge, EdgeCertificatePath, EdgeKeyPath);
    }

    public string Directory { get; }

    public X509Certificate2 Ca { get; }

    public string CaPath { get; }

    public string EdgeCertificatePath { get; }

    public string EdgeKeyPath { get; }

    /// <summary>Issues an origin certificate for the domains; returns the PEM paths.</summary>
    public (string CertificatePath, string KeyPath) IssueOrigin(params string[] domains)
    {
        using var origin = CertificateIssuer.IssueOriginCertificate(Ca, domains, TimeSpan.FromDays(1));
        var prefix = Path.Combine(Directory, "origin-" + Guid.NewGuid().ToString("N")[..8]);
        CertificateIssuer.WritePem(origin, prefix + ".pem", prefix + ".key");
        return (prefix + ".pem", prefix + ".key");
    }

    /// <summary>
    /// Issues a visitor-facing site certificate for <paramref name="hostnames"/> signed by this PKI's CA,
    /// written as <c>{fileName}.pem</c> and <c>{fileName}.key</c>, as the edge's <c>Tls:Certificates</c> take it.
    /// </summary>
    public Tunnel.Edge.Visitors.VisitorCertificateFile IssueSite(string fileName, params string[] hostnames)
    {
        using var certificate = CertificateIssuer.IssueSiteCertificate(Ca, hostnames, TimeSpan.FromDays(1));
        var prefix = Path.Combine(Directory, fileName);
        CertificateIssuer.WritePem(certificate, prefix + ".pem", prefix + ".key");
        return new Tunnel.Edge.Visitors.VisitorCertificateFile { CertificatePath = prefix + ".pem", KeyPath = prefix + ".key" };
    }

    /// <summary>Issues an origin certificate that expires <paramref name="lifetime"/> from now (a few seconds: expiry tests); returns the PEM paths.</summary>
    public (string CertificatePath, string KeyPath, DateTimeOffset NotAfter) IssueShortLivedOrigin(TimeSpan lifetime, params string[] domains)
    {
        using var origin = CertificateIssuer.IssueOriginCertificate(Ca, domains, lifetime);
        var prefix = Path.Combine(Directory, "short-" + Guid.NewGuid().ToString("N")[..8]);
        CertificateIssuer.WritePem(origin, prefix + ".pem", prefix + ".key");
        return (prefix + ".pem", prefix + ".key", new DateTimeOffset(origin.NotAfter.ToUniversalTime()));
    }

    /// <summary>
    /// A credential as <c>tunnel-edge issue</c> writes it: a new origin certificate for
    /// <paramref name="hostnames"/>, signed by <paramref name="issuer"/> (this PKI's CA by default),
    /// pinning this PKI's edge CA.
    /// </summary>
    public TunnelCredential CreateCredential(string[] hostnames, string[] edges, X509Certificate2? issuer = null, string? edgeServerName = "localhost", TimeSpan? validity = null)
    {
        using var origin = CertificateIssuer.IssueOriginCertificate(issuer ?? Ca, hostnames, validity ?? TimeSpan.FromDays(1));
        return TunnelCredential.FromCertificate(origin, hostnames, Ca.ExportCertificatePem(), edges, edgeServerName);
    }

    /// <summary>Writes a credential file the way a renewal should: to a temporary file, then renamed over the old one.</summary>
    public static void WriteCredentialAtomically(string path, TunnelCredential credential) => WriteAtomically(path, credential.ToJson());

    /// <summary>
    /// Writes text to a temporary file beside <paramref name="path"/> and renames it over <paramref name="path"/>;
    /// owner-only (0600), as a credential must be.
    /// </summary>
    public static void WriteAtomically(string path, string text)
    {
        var temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        WriteSecret(temporary, text);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Writes a secret file readable and writable by its owner only (0600), as the edge and the plugin require.</summary>
    public static void WriteSecret(string path, string text)
    {
        File.WriteAllText(path, "");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.WriteAllText(path, text);
    }

    /// <summary>Issues an origin certificate, signed by this CA, that expired a minute after the CA's start (minutes ago).</summary>
    public (string CertificatePath, string KeyPath) IssueExpiredOrigin(params string[] domains)
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=expired origin", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
        var san = new SubjectAlternativeNameBuilder();
        foreach (var domain in domains)
        {
            san.AddDnsName(domain);
        }

        request.CertificateExtensions.Add(san.Build());
        using var issued = request.Create(Ca, Ca.NotBefore, Ca.NotBefore.AddMinutes(1), [0x11, 0x22, 0x33, 0x44]);
        using var origin = issued.CopyWithPrivateKey(key);
        var prefix = Path.Combine(Directory, "expired-" + Guid.NewGuid().ToString("N")[..8]);
        CertificateIssuer.WritePem(origin, prefix + ".pem", prefix + ".key");
        return (prefix + ".pem", prefix + ".key");
    }

    public void Dispose()
    {
        Ca.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
