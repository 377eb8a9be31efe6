using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Identity;

/// <summary>
/// Creates the edge's CA, the edge's TLS server certificate and origin client certificates.
/// ECDSA P-256 keys throughout: small, fast handshakes, supported by every TLS stack we meet.
/// </summary>
public static class CertificateIssuer
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>Creates a self-signed CA certificate with its private key.</summary>
    public static X509Certificate2 CreateCertificateAuthority(string name, TimeSpan validity)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddMinutes(-5), now.Add(validity));
    }

    /// <summary>Issues the edge's TLS server certificate for its DNS names and IP addresses.</summary>
    public static X509Certificate2 IssueServerCertificate(X509Certificate2 ca, IEnumerable<string> dnsNames, IEnumerable<IPAddress> ipAddresses, TimeSpan validity)
        => IssueForAddresses(ca, dnsNames, ipAddresses, [ServerAuthOid], validity);

    /// <summary>
    /// Issues an edge's certificate valid both as TLS server and as client: the tunnel port's server
    /// certificate, and the identity the edge shows other edges on the inter-edge port in a cluster,
    /// where it dials as well as accepts. <c>tunnel-edge init</c> and <c>issue-edge</c> write one.
    /// </summary>
    public static X509Certificate2 IssueEdgeCertificate(X509Certificate2 ca, IEnumerable<string> dnsNames, IEnumerable<IPAddress> ipAddresses, TimeSpan validity)
        => IssueForAddresses(ca, dnsNames, ipAddresses, [ServerAuthOid, ClientAuthOid], validity);

    private static X509Certificate2 IssueForAddresses(X509Certificate2 ca, IEnumerable<string> dnsNames, IEnumerable<IPAddress> ipAddresses, string[] usages, TimeSpan validity)
    {
        ArgumentNullException.ThrowIfNull(dnsNames);
        ArgumentNullException.ThrowIfNull(ipAddresses);
        var names = dnsNames.ToArray();
        var san = new SubjectAlternativeNameBuilder();
        foreach (var dns in names)
        {
            san.AddDnsName(dns);
        }

        foreach (var ip in ipAddresses)
        {
            san.AddIpAddress(ip);
        }

        return Issue(ca, names.FirstOrDefault() ?? "tunnel-edge", san, usages, validity);
    }

    /// <summary>
    /// Issues a visitor-facing TLS certificate for the HTTPS port (exact names and <c>*.example.com</c>
    /// wildcards), signed by the edge's CA: for tests and development, where visitors are told to trust
    /// that CA. Production sites use certificates from a public CA.
    /// </summary>
    public static X509Certificate2 IssueSiteCertificate(X509Certificate2 ca, IEnumerable<string> hostnames, TimeSpan validity)
    {
        ArgumentNullException.ThrowIfNull(hostnames);
        var names = new List<string>();
        foreach (var hostname in hostnames)
        {
            if (!Protocol.HostnameRules.TryNormalize(hostname, out var normalized, out var error))
            {
                throw new ArgumentException($"Cannot issue a certificate: {error}.", nameof(hostnames));
            }

            names.Add(normalized);
        }

        if (names.Count == 0)
        {
            throw new ArgumentException("A site certificate needs at least one hostname.", nameof(hostnames));
        }

        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            san.AddDnsName(name);
        }

        return Issue(ca, names[0], san, ServerAuthOid, validity);
    }

    /// <summary>
    /// Issues an origin's client certificate for the domains it may serve (exact names and
    /// <c>*.example.com</c> wildcards); the edge refuses registrations for any other hostname. With
    /// <paramref name="exclusive"/>, the certificate also claims its exact names exclusively
    /// (<see cref="ExclusiveClaim"/>): edges refuse them to any credential that does not claim them too.
    /// </summary>
    public static X509Certificate2 IssueOriginCertificate(X509Certificate2 ca, IEnumerable<string> domains, TimeSpan validity, bool exclusive = false)
    {
        ArgumentNullException.ThrowIfNull(domains);
        var names = domains.ToArray();
        if (names.Length == 0)
        {
            throw new ArgumentException("An origin certificate needs at least one domain.", nameof(domains));
        }

        var san = new SubjectAlternativeNameBuilder();
        var exact = new List<string>();
        foreach (var domain in names)
        {
            if (!Protocol.HostnameRules.TryNormalize(domain, out var normalized, out var error))
            {
                throw new ArgumentException($"Cannot issue a certificate: {error}.", nameof(domains));
            }

            san.AddDnsName(normalized);
            if (!normalized.StartsWith("*.", StringComparison.Ordinal))
            {
                exact.Add(normalized);
            }
        }

        if (!exclusive)
        {
            return Issue(ca, "origin " + names[0], san, [ClientAuthOid], validity);
        }

        if (exact.Count == 0)
        {
            throw new ArgumentException("An exclusive claim needs at least one exact hostname: a wildcard cannot be claimed exclusively.", nameof(domains));
        }

        return Issue(ca, "origin " + names[0], san, [ClientAuthOid], validity, ExclusiveClaim.CreateExtension(exact));
    }

    /// <summary>The DNS names of a certificate's subject alternative name extension.</summary>
    public static IReadOnlyList<string> GetDnsNames(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>()
            .SelectMany(e => e.EnumerateDnsNames())
            .ToArray();
    }

    /// <summary>
    /// Writes a certificate (PEM) and its private key (PKCS#8 PEM). The key file is created with
    /// owner-only permissions on Unix; both are written to a temporary file and renamed, so a reader
    /// never sees half a file.
    /// </summary>
    public static void WritePem(X509Certificate2 certificate, string certificatePath, string keyPath)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        SecureFile.WriteAtomically(certificatePath, certificate.ExportCertificatePem() + "\n", secret: false);
        var key = (AsymmetricAlgorithm?)certificate.GetECDsaPrivateKey() ?? certificate.GetRSAPrivateKey()
            ?? throw new InvalidOperationException("The certificate has no exportable private key.");
        using (key)
        {
            SecureFile.WriteAtomically(keyPath, key.ExportPkcs8PrivateKeyPem() + "\n", secret: true);
        }
    }

    /// <summary>Loads a certificate and its key written by <see cref="WritePem"/>; a key file open to other users is refused.</summary>
    public static X509Certificate2 LoadPem(string certificatePath, string keyPath)
    {
        if (Protocol.Credentials.SecretFilePermissions.Problem(keyPath, "private key file") is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        try
        {
            return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException($"Cannot load the certificate '{certificatePath}' with key '{keyPath}': {ex.Message}", ex);
        }
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string subjectName, SubjectAlternativeNameBuilder san, string ekuOid, TimeSpan validity) =>
        Issue(ca, subjectName, san, [ekuOid], validity);

    private static X509Certificate2 Issue(X509Certificate2 ca, string subjectName, SubjectAlternativeNameBuilder san, string[] ekuOids, TimeSpan validity, X509Extension? extra = null)
    {
        ArgumentNullException.ThrowIfNull(ca);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(subjectName)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        var usages = new OidCollection();
        foreach (var oid in ekuOids)
        {
            usages.Add(new Oid(oid));
        }

        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        request.CertificateExtensions.Add(san.Build());
        if (extra is not null)
        {
            request.CertificateExtensions.Add(extra);
        }

        var now = DateTimeOffset.UtcNow;
        var notAfter = now.Add(validity);
        if (notAfter > ca.NotAfter)
        {
            notAfter = ca.NotAfter;
        }

        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        using var issued = request.Create(ca, now.AddMinutes(-5), notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    private static string Escape(string value) => value.Replace(",", "\\,", StringComparison.Ordinal).Replace("=", "\\=", StringComparison.Ordinal);
}
