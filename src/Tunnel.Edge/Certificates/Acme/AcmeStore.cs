using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The ACME state on disk (<see cref="AcmeOptions.StoragePath"/>): the account key (<c>account.key</c>, 0600),
/// the account's URL at its CA (<c>account.json</c>) and each certificate as <c>certificates/NAME.pem</c>
/// (the chain) with <c>NAME.key</c> (0600), all written atomically through <see cref="SecureFile"/>.
/// </summary>
internal sealed class AcmeStore
{
    private const string AccountKeyFile = "account.key";
    private const string AccountFile = "account.json";
    private const string CertificatesFolder = "certificates";

    /// <summary>A store in <paramref name="path"/>; nothing is read until asked.</summary>
    public AcmeStore(string path) => Path = System.IO.Path.GetFullPath(path);

    /// <summary>The directory.</summary>
    public string Path { get; }

    /// <summary>The account key, created (P-256, for ES256) and written owner-only on first use.</summary>
    public ECDsa AccountKey()
    {
        var file = System.IO.Path.Combine(Path, AccountKeyFile);
        var key = ECDsa.Create();
        if (File.Exists(file))
        {
            try
            {
                key.ImportFromPem(SecureFile.Read(file, "ACME account key"));
                return key;
            }
            catch (Exception ex) when (ex is ArgumentException or CryptographicException)
            {
                key.Dispose();
                throw new InvalidOperationException($"The ACME account key '{file}' is not a PEM EC key: {ex.Message}", ex);
            }
        }

        key.GenerateKey(ECCurve.NamedCurves.nistP256);
        SecureFile.WriteAtomically(file, key.ExportPkcs8PrivateKeyPem() + "\n", secret: true);
        return key;
    }

    /// <summary>The account URL stored for <paramref name="directoryUrl"/>, or <c>null</c> (none yet, or another CA's).</summary>
    public string? AccountUrl(string directoryUrl)
    {
        var file = System.IO.Path.Combine(Path, AccountFile);
        if (!File.Exists(file))
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(SecureFile.Read(file, "ACME account"));
            return AcmeDirectory.Optional(json.RootElement, "directory") == directoryUrl ? AcmeDirectory.Optional(json.RootElement, "account") : null;
        }
        catch (JsonException)
        {
            return null; // Found again with newAccount: the key identifies the account.
        }
    }

    /// <summary>Remembers the account URL for <paramref name="directoryUrl"/>.</summary>
    public void SaveAccountUrl(string directoryUrl, string accountUrl) =>
        SecureFile.WriteAtomically(System.IO.Path.Combine(Path, AccountFile),
            $$"""{"directory":{{AcmeJws.Quote(directoryUrl)}},"account":{{AcmeJws.Quote(accountUrl)}}}""" + "\n", secret: false);

    /// <summary>
    /// Writes a certificate: the key first, then the chain, each atomically; a reader between the two finds
    /// a chain whose key does not match and keeps what it had.
    /// </summary>
    public void SaveCertificate(string id, string chainPem, string keyPem)
    {
        SecureFile.WriteAtomically(KeyPath(id), keyPem, secret: true);
        SecureFile.WriteAtomically(ChainPath(id), chainPem, secret: false);
    }

    /// <summary>Every stored certificate that loads with its key: (id, certificate with key, chain).</summary>
    public IEnumerable<(string Id, X509Certificate2 Certificate, X509Certificate2Collection Chain)> LoadCertificates(Action<string, string> onError)
    {
        var folder = System.IO.Path.Combine(Path, CertificatesFolder);
        if (!Directory.Exists(folder))
        {
            yield break;
        }

        foreach (var chainPath in Directory.GetFiles(folder, "*.pem").Order(StringComparer.Ordinal))
        {
            var id = System.IO.Path.GetFileNameWithoutExtension(chainPath);
            (X509Certificate2, X509Certificate2Collection)? loaded = null;
            try
            {
                loaded = Load(SecureFile.Read(chainPath, "ACME certificate"), SecureFile.Read(KeyPath(id), "ACME certificate key"));
            }
            catch (Exception ex) when (ex is InvalidOperationException or CryptographicException or ArgumentException)
            {
                onError(chainPath, ex.Message);
            }

            if (loaded is { } pair)
            {
                yield return (id, pair.Item1, pair.Item2);
            }
        }
    }

    /// <summary>The leaf with its key, and the rest of the chain.</summary>
    public static (X509Certificate2 Certificate, X509Certificate2Collection Chain) Load(string chainPem, string keyPem)
    {
        var all = new X509Certificate2Collection();
        all.ImportFromPem(chainPem);
        if (all.Count == 0)
        {
            throw new InvalidOperationException("The chain holds no certificate.");
        }

        using var leaf = all[0];
        using var key = ECDsa.Create();
        key.ImportFromPem(keyPem);
        using var withKey = leaf.CopyWithPrivateKey(key);

        // SslStream on Linux wants a key it can export into its own store: round-trip through PKCS#12.
        var certificate = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        all.RemoveAt(0);
        return (certificate, all);
    }

    /// <summary>The file name for a certificate's first name: <c>*.example.com</c> becomes <c>_wildcard.example.com</c>.</summary>
    public static string IdFor(string firstName) => firstName.Replace("*", "_wildcard", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="id"/> could have come from <see cref="IdFor"/>: a file name with no path in it.</summary>
    public static bool IsValidId(string id) =>
        id.Length is > 0 and <= 260 && id[0] != '.' && id.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-' or '_');

    private string ChainPath(string id) => System.IO.Path.Combine(Path, CertificatesFolder, id + ".pem");

    private string KeyPath(string id) => System.IO.Path.Combine(Path, CertificatesFolder, id + ".key");
}
