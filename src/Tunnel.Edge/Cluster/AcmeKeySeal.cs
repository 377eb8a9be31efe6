using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Tunnel.Edge.Certificates.Acme;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// How a shared ACME certificate is stored in etcd: JSON with the chain in the clear and the private key sealed
/// with AES-256-GCM (a random 96-bit nonce, a 128-bit tag), the certificate's id and chain as associated data, so
/// a sealed key moved under another id or beside another chain does not open. The key is derived with
/// HKDF-SHA256 from the cluster key file (<see cref="AcmeOptions.ClusterKeyPath"/>) every edge holds.
/// </summary>
internal sealed class AcmeKeySeal
{
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    // The shortest cluster key file: less than AES-256's key length of secret is refused at start.
    private const int MinKeyFileBytes = 32;

    private static readonly byte[] SealingInfo = Encoding.ASCII.GetBytes("tunnel-edge acme certificate keys v1");

    private readonly byte[] _key;

    /// <summary>A seal whose key is derived from <paramref name="secret"/>.</summary>
    public AcmeKeySeal(ReadOnlySpan<byte> secret) => _key = HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.ToArray(), 32, salt: [], info: SealingInfo);

    /// <summary>The seal of the cluster key file at <paramref name="path"/>, checked by <see cref="KeyFileProblem"/>.</summary>
    /// <exception cref="InvalidOperationException">The file will not do; the message says why.</exception>
    public static AcmeKeySeal FromFile(string path)
    {
        if (KeyFileProblem(path) is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        var secret = File.ReadAllBytes(path);
        try
        {
            return new AcmeKeySeal(secret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>The problem with a cluster key file (missing, open to others, too short), or <c>null</c> when it will do.</summary>
    public static string? KeyFileProblem(string path)
    {
        if (!File.Exists(path))
        {
            return $"Edge:Acme:ClusterKeyPath '{path}' does not exist (create it once, e.g. 'openssl rand -base64 48 > {path}; chmod 600 {path}', and copy it to every edge).";
        }

        return SecretFilePermissions.Problem(path, "ACME cluster key")
            ?? (new FileInfo(path).Length < MinKeyFileBytes ? $"Edge:Acme:ClusterKeyPath '{path}' holds fewer than {MinKeyFileBytes} bytes: too little to derive a key from." : null);
    }

    /// <summary>The value stored for certificate <paramref name="id"/>, naming the edge <paramref name="by"/> that obtained it.</summary>
    public string Seal(string id, IssuedPem pem, string by)
    {
        ArgumentNullException.ThrowIfNull(pem);
        var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
        var plain = Encoding.UTF8.GetBytes(pem.KeyPem);
        var sealedKey = new byte[NonceBytes + plain.Length + TagBytes];
        nonce.CopyTo(sealedKey, 0);
        using (var aes = new AesGcm(_key, TagBytes))
        {
            aes.Encrypt(nonce, plain, sealedKey.AsSpan(NonceBytes, plain.Length), sealedKey.AsSpan(NonceBytes + plain.Length), AssociatedData(id, pem.ChainPem));
        }

        CryptographicOperations.ZeroMemory(plain);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("chain", pem.ChainPem);
            writer.WriteString("sealedKey", Convert.ToBase64String(sealedKey));
            writer.WriteString("by", by);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The chain and key in a stored value.</summary>
    /// <exception cref="AuthenticationTagMismatchException">Sealed with another key, or for another id or chain.</exception>
    /// <exception cref="JsonException">Not the stored form.</exception>
    /// <exception cref="FormatException">Not the stored form.</exception>
    /// <exception cref="KeyNotFoundException">Not the stored form.</exception>
    public IssuedPem Open(string id, string value)
    {
        using var document = JsonDocument.Parse(value);
        var chain = document.RootElement.GetProperty("chain").GetString() ?? throw new FormatException("the stored certificate has no chain");
        var sealedKey = Convert.FromBase64String(document.RootElement.GetProperty("sealedKey").GetString() ?? throw new FormatException("the stored certificate has no sealed key"));
        if (sealedKey.Length < NonceBytes + TagBytes)
        {
            throw new FormatException("the sealed key is too short");
        }

        var plain = new byte[sealedKey.Length - NonceBytes - TagBytes];
        using (var aes = new AesGcm(_key, TagBytes))
        {
            aes.Decrypt(sealedKey.AsSpan(0, NonceBytes), sealedKey.AsSpan(NonceBytes, plain.Length), sealedKey.AsSpan(NonceBytes + plain.Length), plain, AssociatedData(id, chain));
        }

        var key = Encoding.UTF8.GetString(plain);
        CryptographicOperations.ZeroMemory(plain);
        return new IssuedPem(chain, key);
    }

    private static byte[] AssociatedData(string id, string chainPem) => Encoding.UTF8.GetBytes(id + "\n" + chainPem);
}
