using System.Buffers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>
/// Signs the identity assertions the edge sends the app (<see cref="Protocol.TunnelHeaderNames.Identity"/>):
/// compact JWTs, ES256, with a P-256 key kept owner-only in the edge's directory (created on first use).
/// Its public key goes to origins in the registration reply.
/// </summary>
internal sealed class EdgeAssertionSigner : IDisposable
{
    /// <summary>The key file's name, beside the edge's server key.</summary>
    public const string KeyFile = "access-signing.key";

    /// <summary>How long an assertion is good for: one request's way through the tunnel, with room for clock skew.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(60);

    private readonly ECDsa _key;
    private readonly TimeProvider _time;
    private readonly byte[] _header;

    private EdgeAssertionSigner(ECDsa key, string issuer, TimeProvider time)
    {
        _key = key;
        _time = time;
        Issuer = issuer;
        var spki = key.ExportSubjectPublicKeyInfo();
        PublicKey = Convert.ToBase64String(spki);
        KeyId = Base64Url(SHA256.HashData(spki).AsSpan(0, 12));
        _header = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = "ES256", ["typ"] = "JWT", ["kid"] = KeyId });
    }

    /// <summary>The public key, SubjectPublicKeyInfo in base64, as origins get it.</summary>
    public string PublicKey { get; }

    /// <summary>The key's id in the assertions' header: the first 96 bits of its SHA-256, base64url.</summary>
    public string KeyId { get; }

    /// <summary>The <c>iss</c> of every assertion: the edge's name, as origins get it in the registration reply.</summary>
    public string Issuer { get; }

    /// <summary>Loads the key at <paramref name="path"/>, or creates it there (mode 0600) when there is none.</summary>
    public static EdgeAssertionSigner LoadOrCreate(string path, string issuer, TimeProvider time)
    {
        var key = ECDsa.Create();
        try
        {
            if (File.Exists(path))
            {
                key.ImportFromPem(SecureFile.Read(path, "identity assertion key"));
                if (key.KeySize != 256)
                {
                    throw new InvalidOperationException($"The identity assertion key '{path}' is not a P-256 key; delete it and the edge makes a new one.");
                }
            }
            else
            {
                key.GenerateKey(ECCurve.NamedCurves.nistP256);
                SecureFile.WriteAtomically(path, key.ExportPkcs8PrivateKeyPem(), secret: true);
            }
        }
        catch (CryptographicException ex)
        {
            key.Dispose();
            throw new InvalidOperationException($"The identity assertion key '{path}' is not a PEM EC private key: {ex.Message}", ex);
        }
        catch
        {
            key.Dispose();
            throw;
        }

        return new EdgeAssertionSigner(key, issuer, time);
    }

    /// <summary>A signed assertion of <paramref name="visitor"/> for the app at <paramref name="audience"/> (the route's hostname).</summary>
    public string Sign(ClaimsPrincipal visitor, string audience, bool profileClaims)
    {
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        var payload = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(payload))
        {
            json.WriteStartObject();
            json.WriteString("iss", Issuer);
            json.WriteString("aud", audience);
            json.WriteString("sub", visitor.FindFirstValue(SignInClaims.Subject) ?? "");
            json.WriteNumber("iat", now);
            json.WriteNumber("nbf", now);
            json.WriteNumber("exp", now + (long)Lifetime.TotalSeconds);
            json.WriteString("jti", Base64Url(RandomNumberGenerator.GetBytes(12)));
            if (profileClaims)
            {
                WriteProfile(json, visitor);
            }

            json.WriteEndObject();
        }

        var signingInput = Base64Url(_header) + "." + Base64Url(payload.WrittenSpan);
        var signature = _key.SignData(System.Text.Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return signingInput + "." + Base64Url(signature);
    }

    public void Dispose() => _key.Dispose();

    private static void WriteProfile(Utf8JsonWriter json, ClaimsPrincipal visitor)
    {
        foreach (var type in (string[])[SignInClaims.Email, SignInClaims.Name])
        {
            if (visitor.FindFirstValue(type) is { } value)
            {
                json.WriteString(type, value);
            }
        }

        var groups = visitor.FindAll(SignInClaims.Groups).Select(c => c.Value).ToArray();
        if (groups.Length > 0)
        {
            json.WriteStartArray(SignInClaims.Groups);
            foreach (var group in groups)
            {
                json.WriteStringValue(group);
            }

            json.WriteEndArray();
        }
    }

    private static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);
}

/// <summary>The claim types of a signed-in visitor as the edge keeps them (in its cookie) and sends them (in the assertion).</summary>
internal static class SignInClaims
{
    public const string Subject = "sub";
    public const string Email = "email";
    public const string Name = "name";
    public const string Groups = "groups";
}
