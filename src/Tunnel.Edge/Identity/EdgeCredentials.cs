using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Identity;

/// <summary>
/// The edge's TLS server certificate and the CA certificates whose origin certificates it accepts.
/// Loaded once at start; a missing or corrupt file stops the edge with a message naming it.
/// </summary>
public sealed class EdgeCredentials
{
    /// <summary>Creates the credentials from loaded certificates.</summary>
    public EdgeCredentials(X509Certificate2 serverCertificate, X509Certificate2Collection trustedCas)
    {
        ArgumentNullException.ThrowIfNull(serverCertificate);
        ArgumentNullException.ThrowIfNull(trustedCas);
        if (!serverCertificate.HasPrivateKey)
        {
            throw new InvalidOperationException("The edge's server certificate has no private key.");
        }

        if (trustedCas.Count == 0)
        {
            throw new InvalidOperationException("The edge needs at least one CA certificate to accept origins.");
        }

        ServerCertificate = serverCertificate;
        TrustedCas = trustedCas;
    }

    /// <summary>The edge's TLS server certificate with its key.</summary>
    public X509Certificate2 ServerCertificate { get; }

    /// <summary>The CAs that issue origin certificates.</summary>
    public X509Certificate2Collection TrustedCas { get; }

    /// <summary>Loads the files named in the options.</summary>
    public static EdgeCredentials Load(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.CaCertificatePath) || string.IsNullOrEmpty(options.ServerCertificatePath) || string.IsNullOrEmpty(options.ServerKeyPath))
        {
            throw new InvalidOperationException("The edge needs CaCertificatePath, ServerCertificatePath and ServerKeyPath (tunnel-edge init writes them).");
        }

        var server = CertificateIssuer.LoadPem(options.ServerCertificatePath, options.ServerKeyPath);
        var cas = new X509Certificate2Collection();
        try
        {
            cas.ImportFromPemFile(options.CaCertificatePath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new InvalidOperationException($"Cannot load the CA file '{options.CaCertificatePath}': {ex.Message}", ex);
        }

        return new EdgeCredentials(server, cas);
    }
}
