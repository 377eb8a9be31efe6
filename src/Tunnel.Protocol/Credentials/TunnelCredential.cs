using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tunnel.Protocol.Credentials;

/// <summary>
/// An origin's credential as one file, written by <c>tunnel-edge issue</c> and loaded by the plugin
/// (<c>Tunnel:CredentialPath</c>): the origin certificate and its key, the edge CA to pin, and where the
/// edges are. JSON, so an operator can read what it holds; it contains a private key, so it is written
/// with owner-only permissions.
/// </summary>
public sealed record TunnelCredential
{
    /// <summary>The value of <see cref="Format"/> this version writes and reads.</summary>
    public const string CurrentFormat = "tunnel-credential/1";

    /// <summary>The file's format marker; always <see cref="CurrentFormat"/>.</summary>
    public string Format { get; init; } = CurrentFormat;

    /// <summary>
    /// The credential's id: the origin certificate's serial number in upper-case hex. The edge's
    /// credential list and its revocation list name credentials by it.
    /// </summary>
    public string Id { get; init; } = "";

    /// <summary>The hostnames the credential may serve (exact names and <c>*.example.com</c> wildcards).</summary>
    public IReadOnlyList<string> Hostnames { get; init; } = [];

    /// <summary>The origin certificate, PEM.</summary>
    public string Certificate { get; init; } = "";

    /// <summary>The origin certificate's private key, PKCS#8 PEM.</summary>
    public string Key { get; init; } = "";

    /// <summary>The edge CA certificate(s) the edges' server certificates chain to, PEM (one or more).</summary>
    public string EdgeCa { get; init; } = "";

    /// <summary>
    /// Where the edges are: <c>host:port</c> entries and/or one <c>srv:NAME</c>, as <c>Tunnel:Edges</c>
    /// takes them. May be empty when the app configures its edges itself.
    /// </summary>
    public IReadOnlyList<string> Edges { get; init; } = [];

    /// <summary>The name to expect in the edges' certificates when it differs from the dialed host; <c>null</c> otherwise.</summary>
    public string? EdgeServerName { get; init; }

    /// <summary>When the certificate becomes valid.</summary>
    public DateTimeOffset NotBefore { get; init; }

    /// <summary>When the certificate expires.</summary>
    public DateTimeOffset NotAfter { get; init; }

    /// <summary>
    /// A credential for an origin certificate with its private key: the certificate and key as PEM, its
    /// id and validity, with the edge CA bundle to pin and where the edges are.
    /// </summary>
    /// <exception cref="InvalidOperationException">The certificate has no exportable ECDSA or RSA key.</exception>
    public static TunnelCredential FromCertificate(X509Certificate2 certificate, IReadOnlyList<string> hostnames, string edgeCaPem, IReadOnlyList<string> edges, string? edgeServerName)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var key = (AsymmetricAlgorithm?)certificate.GetECDsaPrivateKey() ?? certificate.GetRSAPrivateKey()
            ?? throw new InvalidOperationException("The certificate has no exportable private key.");
        return new TunnelCredential
        {
            Id = IdOf(certificate),
            Hostnames = hostnames,
            Certificate = certificate.ExportCertificatePem() + "\n",
            Key = key.ExportPkcs8PrivateKeyPem() + "\n",
            EdgeCa = edgeCaPem,
            Edges = edges,
            EdgeServerName = string.IsNullOrEmpty(edgeServerName) ? null : edgeServerName,
            NotBefore = certificate.NotBefore.ToUniversalTime(),
            NotAfter = certificate.NotAfter.ToUniversalTime(),
        };
    }

    /// <summary>Serializes the credential as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, CredentialJsonContext.Default.TunnelCredential);

    /// <summary>
    /// Parses and checks a credential file's text: format, certificate, key matching the certificate,
    /// at least one edge CA certificate. <paramref name="source"/> names the file in error messages.
    /// </summary>
    /// <exception cref="InvalidDataException">The text is not a valid credential; the message says why.</exception>
    public static TunnelCredential Parse(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        TunnelCredential? credential;
        try
        {
            credential = JsonSerializer.Deserialize(json, CredentialJsonContext.Default.TunnelCredential);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"The credential file '{source}' is not valid JSON: {ex.Message}", ex);
        }

        if (credential is null)
        {
            throw new InvalidDataException($"The credential file '{source}' is empty.");
        }

        if (credential.Format != CurrentFormat)
        {
            throw new InvalidDataException($"The credential file '{source}' has format '{credential.Format}'; this version reads '{CurrentFormat}'.");
        }

        // Load once to check the certificate, the key and the CA; callers load again when they need them.
        credential.CreateCertificate(source).Dispose();
        _ = credential.CreateEdgeCas(source);
        return credential;
    }

    /// <summary>Reads and checks a credential file.</summary>
    /// <exception cref="InvalidDataException">The file is missing, unreadable, open to other users or not a valid credential.</exception>
    public static TunnelCredential Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (SecretFilePermissions.Problem(path, "credential file") is { } problem)
        {
            throw new InvalidDataException(problem);
        }

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"Cannot read the credential file '{path}': {ex.Message}", ex);
        }

        return Parse(text, path);
    }

    /// <summary>The origin certificate with its private key.</summary>
    /// <exception cref="InvalidDataException">The certificate or key is missing or they do not match.</exception>
    public X509Certificate2 CreateCertificate(string source = "credential")
    {
        try
        {
            var certificate = X509Certificate2.CreateFromPem(Certificate, Key);
            if (!certificate.HasPrivateKey)
            {
                certificate.Dispose();
                throw new InvalidDataException($"The credential '{source}' holds no private key for its certificate.");
            }

            return certificate;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new InvalidDataException($"The credential '{source}' holds no usable certificate and key: {ex.Message}", ex);
        }
    }

    /// <summary>The edge CA certificates to pin.</summary>
    /// <exception cref="InvalidDataException">No CA certificate can be read.</exception>
    public X509Certificate2Collection CreateEdgeCas(string source = "credential")
    {
        var cas = new X509Certificate2Collection();
        try
        {
            cas.ImportFromPem(EdgeCa);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidDataException($"The credential '{source}' has an unreadable edge CA: {ex.Message}", ex);
        }

        if (cas.Count == 0)
        {
            throw new InvalidDataException($"The credential '{source}' has no edge CA certificate.");
        }

        return cas;
    }

    /// <summary>The credential id of a certificate: its serial number, upper-case hex.</summary>
    public static string IdOf(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return certificate.SerialNumber.ToUpperInvariant();
    }
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(TunnelCredential))]
internal sealed partial class CredentialJsonContext : JsonSerializerContext;
