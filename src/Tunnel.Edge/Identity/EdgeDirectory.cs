using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Edge.Identity;

/// <summary>
/// The edge's state directory (<c>tunnel-edge init --dir</c>): its CA, its server certificate, the CAs
/// it trusts for origins, the credentials it issued, the revocation list and the admin token. Every
/// command that changes the directory goes through here, so the CLI, the demo and tests share one
/// implementation; writes are atomic and secrets owner-only.
/// </summary>
internal sealed class EdgeDirectory
{
    /// <summary>The issuing CA's certificate: new origin credentials are signed by it.</summary>
    public const string CaCertificateFile = "ca.pem";

    /// <summary>The issuing CA's private key (0600).</summary>
    public const string CaKeyFile = "ca.key";

    /// <summary>The edge's TLS server certificate for the tunnel port.</summary>
    public const string ServerCertificateFile = "edge.pem";

    /// <summary>The server certificate's private key (0600).</summary>
    public const string ServerKeyFile = "edge.key";

    /// <summary>
    /// Every CA the edge accepts origin certificates from, and that origins pin for the edge: the
    /// issuing CA, plus the previous one during a rotation's overlap.
    /// </summary>
    public const string TrustedCasFile = "trusted-cas.pem";

    /// <summary>The issued credentials (metadata only, no keys).</summary>
    public const string RegistryFile = "credentials.json";

    /// <summary>The revocation list.</summary>
    public const string RevocationsFile = "revoked.json";

    /// <summary>The admin API's bearer token (0600).</summary>
    public const string AdminTokenFile = "admin.token";

    /// <summary>The ACME account key, account URL and issued certificates (<c>Edge:Acme:StoragePath</c>).</summary>
    public const string AcmeFolder = "acme";

    /// <summary>Opens a directory; nothing is read until asked.</summary>
    public EdgeDirectory(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>The directory's full path.</summary>
    public string Path { get; }

    /// <summary>The full path of one of the directory's files.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// The CA file the edge trusts origins from: <see cref="TrustedCasFile"/>, or <see cref="CaCertificateFile"/>
    /// in a directory written before trust bundles existed.
    /// </summary>
    public string TrustedCasPath => System.IO.File.Exists(File(TrustedCasFile)) ? File(TrustedCasFile) : File(CaCertificateFile);

    /// <summary>
    /// Creates the CA, the edge's server certificate, the trust bundle and the admin token. Refuses to
    /// replace an existing CA unless <paramref name="force"/>, because every issued credential would stop working.
    /// </summary>
    public void Initialize(string caName, IEnumerable<string> dnsNames, IEnumerable<IPAddress> ipAddresses, TimeSpan caValidity, bool force)
    {
        if (System.IO.File.Exists(File(CaCertificateFile)) && !force)
        {
            throw new InvalidOperationException($"A CA already exists at {File(CaCertificateFile)}; pass --force to replace it (every issued origin credential then stops working).");
        }

        using var ca = CertificateIssuer.CreateCertificateAuthority(caName, caValidity);
        using var edge = CertificateIssuer.IssueEdgeCertificate(ca, dnsNames, ipAddresses, ServerCertificateValidity);
        CertificateIssuer.WritePem(ca, File(CaCertificateFile), File(CaKeyFile));
        CertificateIssuer.WritePem(edge, File(ServerCertificateFile), File(ServerKeyFile));
        SecureFile.WriteAtomically(File(TrustedCasFile), ca.ExportCertificatePem() + "\n", secret: false);
        SecureFile.WriteAtomically(File(AdminTokenFile), CreateToken() + "\n", secret: true);
    }

    /// <summary>The edge's server certificate lives a year at most: renewing it is routine, never a migration.</summary>
    public static readonly TimeSpan ServerCertificateValidity = TimeSpan.FromDays(365);

    /// <summary>
    /// Issues an origin credential for <paramref name="domains"/> from the issuing CA, records it in the
    /// registry and returns it; the caller writes it with <see cref="WriteCredential"/>. The credential pins
    /// every CA of the trust bundle, so it keeps working across the edge's next server certificate renewal.
    /// With <paramref name="exclusive"/>, it claims its exact names exclusively (<see cref="ExclusiveClaim"/>).
    /// </summary>
    public TunnelCredential Issue(IEnumerable<string> domains, IEnumerable<string> edges, string? edgeServerName, TimeSpan validity, string label, TimeProvider? time = null, bool exclusive = false)
    {
        using var ca = LoadIssuingCa();
        using var certificate = CertificateIssuer.IssueOriginCertificate(ca, domains, validity, exclusive);
        var credential = TunnelCredential.FromCertificate(certificate, CertificateIssuer.GetDnsNames(certificate), SecureFile.Read(TrustedCasPath, "trusted CA bundle"), [.. edges], edgeServerName);
        CredentialRegistry.Add(File(RegistryFile), new IssuedCredential(credential.Id, label, credential.Hostnames, ca.Subject,
            (time ?? TimeProvider.System).GetUtcNow(), credential.NotBefore, credential.NotAfter, exclusive));
        return credential;
    }

    /// <summary>Writes a credential file atomically with owner-only permissions (it holds a private key).</summary>
    public static void WriteCredential(TunnelCredential credential, string path)
    {
        ArgumentNullException.ThrowIfNull(credential);
        SecureFile.WriteAtomically(path, credential.ToJson() + "\n", secret: true);
    }

    /// <summary>The issued credentials, oldest first.</summary>
    public IReadOnlyList<IssuedCredential> Credentials() => CredentialRegistry.Load(File(RegistryFile));

    /// <summary>The revocation list.</summary>
    public RevocationList Revocations() => RevocationList.Load(File(RevocationsFile));

    /// <summary>Revokes a credential; a running edge reading this directory picks the change up within seconds.</summary>
    public RevocationList Revoke(string credentialId, string reason, TimeProvider? time = null) =>
        RevocationList.Revoke(File(RevocationsFile), credentialId, reason, (time ?? TimeProvider.System).GetUtcNow());

    /// <summary>
    /// Starts a CA rotation: creates the next CA, makes it the issuing CA, and adds it to the trust bundle
    /// beside the current one, so origins holding either CA's credentials are accepted. The previous CA is
    /// kept as <c>ca-SERIAL.pem</c>/<c>.key</c>. Returns the new CA's certificate.
    /// </summary>
    public X509Certificate2 RotateCa(string caName, TimeSpan validity)
    {
        if (!System.IO.File.Exists(File(TrustedCasFile)))
        {
            // An edge started on such a directory trusts ca.pem itself, which is about to hold only the new CA.
            throw new InvalidOperationException($"{Path} has no {TrustedCasFile} (it predates CA rotation): copy {CaCertificateFile} to {TrustedCasFile}, restart the edge so it trusts that file, then rotate.");
        }

        using var previous = LoadIssuingCa();
        var trusted = LoadTrustedCas();
        var next = CertificateIssuer.CreateCertificateAuthority(caName, validity);
        var archive = "ca-" + previous.SerialNumber.ToUpperInvariant();
        CertificateIssuer.WritePem(previous, File(archive + ".pem"), File(archive + ".key"));

        // Trust first, then issue: at every moment the trust bundle covers the issuing CA.
        SecureFile.WriteAtomically(File(TrustedCasFile), ExportBundle([.. trusted, next]), secret: false);
        CertificateIssuer.WritePem(next, File(CaCertificateFile), File(CaKeyFile));
        return next;
    }

    /// <summary>
    /// Ends a CA rotation: removes every CA but the issuing one from the trust bundle, so credentials
    /// of the previous CA are refused and their live connections closed. Refused while the edge's server
    /// certificate is still from a CA being retired (renew it first). Returns the retired CAs' subjects.
    /// </summary>
    public IReadOnlyList<string> RetireOldCas()
    {
        using var issuing = LoadIssuingCa();
        using var server = CertificateIssuer.LoadPem(File(ServerCertificateFile), File(ServerKeyFile));
        if (!IsIssuedBy(server, issuing))
        {
            throw new InvalidOperationException($"The edge's server certificate {File(ServerCertificateFile)} is not from the issuing CA; run 'tunnel-edge renew-server' first, or origins pinning only the new CA could not connect.");
        }

        var trusted = LoadTrustedCas();
        var retired = trusted.Where(c => c.Thumbprint != issuing.Thumbprint).Select(c => $"{c.Subject} (serial {c.SerialNumber})").ToArray();
        SecureFile.WriteAtomically(File(TrustedCasFile), ExportBundle([issuing]), secret: false);
        return retired;
    }

    /// <summary>
    /// Issues a new server certificate from the issuing CA, for the given names or else the current
    /// certificate's; a running edge uses it for new handshakes within seconds, existing tunnels stay up.
    /// </summary>
    public X509Certificate2 RenewServerCertificate(IReadOnlyList<string>? dnsNames, IReadOnlyList<IPAddress>? ipAddresses, TimeSpan validity)
    {
        if (dnsNames is not { Count: > 0 } || ipAddresses is null)
        {
            using var current = X509CertificateLoader.LoadCertificateFromFile(File(ServerCertificateFile));
            var san = current.Extensions.OfType<X509SubjectAlternativeNameExtension>().ToArray();
            dnsNames = dnsNames is { Count: > 0 } ? dnsNames : [.. san.SelectMany(e => e.EnumerateDnsNames())];
            ipAddresses ??= [.. san.SelectMany(e => e.EnumerateIPAddresses())];
        }

        using var ca = LoadIssuingCa();
        var renewed = CertificateIssuer.IssueEdgeCertificate(ca, dnsNames, ipAddresses, validity);

        // Two renames: a running edge that reads between them finds a certificate that does not match
        // its key, keeps the certificate it has and takes the pair on its next check.
        CertificateIssuer.WritePem(renewed, File(ServerCertificateFile), File(ServerKeyFile));
        return renewed;
    }

    /// <summary>Reads the admin token.</summary>
    public string ReadAdminToken() => AdminToken.Load(File(AdminTokenFile));

    private X509Certificate2 LoadIssuingCa() => CertificateIssuer.LoadPem(File(CaCertificateFile), File(CaKeyFile));

    private X509Certificate2[] LoadTrustedCas()
    {
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPemFile(TrustedCasPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new InvalidOperationException($"Cannot load the trusted CA bundle '{TrustedCasPath}': {ex.Message}", ex);
        }

        return [.. collection];
    }

    private static bool IsIssuedBy(X509Certificate2 certificate, X509Certificate2 ca)
    {
        var authorityKey = certificate.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().FirstOrDefault()?.KeyIdentifier;
        var subjectKey = ca.Extensions.OfType<X509SubjectKeyIdentifierExtension>().FirstOrDefault()?.SubjectKeyIdentifierBytes;
        return authorityKey is { } a && subjectKey is { } s && a.Span.SequenceEqual(s.Span);
    }

    private static string ExportBundle(IEnumerable<X509Certificate2> cas) => string.Concat(cas.Select(c => c.ExportCertificatePem() + "\n"));


    private static string CreateToken() => System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
}
