using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Dial.Credentials;

/// <summary>
/// Loads the PEM files the edge's tooling writes: an origin certificate with its private key,
/// and the edge CA certificate(s) to trust.
/// </summary>
public static class PemCertificates
{
    /// <summary>
    /// Loads a certificate and its private key. <paramref name="keyPath"/> may be <c>null</c> when the key
    /// is in the same file as the certificate.
    /// </summary>
    /// <exception cref="InvalidOperationException">A file is missing or unreadable, holds no matching key, or the key's file is open to other users.</exception>
    public static X509Certificate2 LoadCertificateWithKey(string certificatePath, string? keyPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(certificatePath);
        if (Protocol.Credentials.SecretFilePermissions.Problem(keyPath ?? certificatePath, keyPath is null ? "certificate file (with its private key)" : "private key file") is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        try
        {
            var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            if (!certificate.HasPrivateKey)
            {
                certificate.Dispose();
                throw new InvalidOperationException($"The certificate file '{certificatePath}' has no private key and no key file was given.");
            }

            return certificate;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException($"Cannot load the certificate '{certificatePath}'{(keyPath is null ? "" : $" with key '{keyPath}'")}: {ex.Message}", ex);
        }
    }

    /// <summary>Loads every certificate in a PEM file (a CA bundle).</summary>
    /// <exception cref="InvalidOperationException">The file is missing, unreadable or holds no certificate.</exception>
    public static X509Certificate2Collection LoadBundle(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var bundle = new X509Certificate2Collection();
        try
        {
            bundle.ImportFromPemFile(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new InvalidOperationException($"Cannot load the CA bundle '{path}': {ex.Message}", ex);
        }

        if (bundle.Count == 0)
        {
            throw new InvalidOperationException($"The CA bundle '{path}' holds no certificate.");
        }

        return bundle;
    }
}
