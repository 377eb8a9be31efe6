using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The JSON Web Signatures ACME requests are made of (RFC 8555 section 6.2, RFC 7515 flattened form):
/// ES256 with the account's P-256 key, and the HS256 External Account Binding (section 7.3.4).
/// </summary>
internal static class AcmeJws
{
    /// <summary>The base64url encoding of RFC 7515 (no padding).</summary>
    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    /// <summary>
    /// Decodes base64url (padding optional); standard base64's <c>+</c> and <c>/</c> are taken too, since this reads
    /// keys people paste from a CA's page.
    /// </summary>
    public static byte[] FromBase64Url(string text)
    {
        var s = text.Trim().Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '='));
    }

    /// <summary>The account key's public JWK, members in the lexicographic order RFC 7638 hashes them in.</summary>
    public static string Jwk(ECDsa key)
    {
        var p = key.ExportParameters(includePrivateParameters: false);
        return $$"""{"crv":"P-256","kty":"EC","x":"{{Base64Url(p.Q.X)}}","y":"{{Base64Url(p.Q.Y)}}"}""";
    }

    /// <summary>The JWK thumbprint (RFC 7638): the account's part of every key authorization.</summary>
    public static string Thumbprint(ECDsa key) => Base64Url(SHA256.HashData(Encoding.UTF8.GetBytes(Jwk(key))));

    /// <summary>
    /// A signed request body. <paramref name="kid"/> (the account URL) or, before there is an account, the
    /// JWK identifies the key; <paramref name="payload"/> <c>null</c> is a POST-as-GET (empty payload).
    /// </summary>
    public static byte[] Sign(ECDsa key, string? kid, string nonce, string url, string? payload)
    {
        var header = kid is null
            ? $$"""{"alg":"ES256","jwk":{{Jwk(key)}},"nonce":{{Quote(nonce)}},"url":{{Quote(url)}}}"""
            : $$"""{"alg":"ES256","kid":{{Quote(kid)}},"nonce":{{Quote(nonce)}},"url":{{Quote(url)}}}""";
        var protectedPart = Base64Url(Encoding.UTF8.GetBytes(header));
        var payloadPart = payload is null ? "" : Base64Url(Encoding.UTF8.GetBytes(payload));

        // .NET signs ECDSA in the IEEE P1363 form (r || s) that JWS's ES256 wants.
        var signature = key.SignData(Encoding.ASCII.GetBytes(protectedPart + "." + payloadPart), HashAlgorithmName.SHA256);
        return Flattened(protectedPart, payloadPart, Base64Url(signature));
    }

    /// <summary>
    /// The <c>externalAccountBinding</c> member of a newAccount payload: the account's JWK signed with the
    /// CA-issued HMAC key under the CA-issued key id.
    /// </summary>
    public static string ExternalAccountBinding(ECDsa accountKey, string keyId, string hmacKeyBase64Url, string newAccountUrl)
    {
        var protectedPart = Base64Url(Encoding.UTF8.GetBytes($$"""{"alg":"HS256","kid":{{Quote(keyId)}},"url":{{Quote(newAccountUrl)}}}"""));
        var payloadPart = Base64Url(Encoding.UTF8.GetBytes(Jwk(accountKey)));
        var mac = HMACSHA256.HashData(FromBase64Url(hmacKeyBase64Url), Encoding.ASCII.GetBytes(protectedPart + "." + payloadPart));
        return Encoding.UTF8.GetString(Flattened(protectedPart, payloadPart, Base64Url(mac)));
    }

    /// <summary>A JSON string literal.</summary>
    public static string Quote(string value) => JsonSerializer.Serialize(value, AcmeJsonContext.Default.String);

    private static byte[] Flattened(string protectedPart, string payloadPart, string signature) =>
        Encoding.UTF8.GetBytes($$"""{"protected":"{{protectedPart}}","payload":"{{payloadPart}}","signature":"{{signature}}"}""");
}

/// <summary>Source-generated serialization for the few strings the ACME client writes.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
[System.Text.Json.Serialization.JsonSerializable(typeof(string[]))]
internal sealed partial class AcmeJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
