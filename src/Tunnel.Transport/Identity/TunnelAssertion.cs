using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Tunnel.Transport.Identity;

/// <summary>
/// Reads and checks an edge's identity assertion: a compact JWT, ES256 only, signed by the key the edge of
/// the connection published, for the request's host, within its lifetime. <c>iss</c> names the edge that
/// signed the visitor in, which in a cluster (edges sharing their access keys) may be another edge than
/// the connection's, so it is kept as the claims' issuer and not compared: the key is what binds.
/// </summary>
internal static class TunnelAssertion
{
    /// <summary>Longer than any assertion an edge makes (a few hundred bytes, more with many groups).</summary>
    public const int MaxLength = 16 * 1024;

    /// <summary>The longest lifetime accepted, whatever the assertion says (the edge gives 60 s).</summary>
    private static readonly TimeSpan MaxLifetime = TimeSpan.FromMinutes(5);

    /// <summary>The assertion's claims, or <c>null</c> with why it is refused.</summary>
    public static List<Claim>? Validate(string token, string publicKey, string audience, DateTimeOffset now, TimeSpan skew, out string? error)
    {
        error = Check(token, publicKey, audience, now, skew, out var payload);
        if (error is not null)
        {
            return null;
        }

        var issuer = String(payload, "iss")!;
        var claims = new List<Claim>();
        foreach (var property in payload.EnumerateObject())
        {
            if (property.Name is "sub" or "email" or "name" && property.Value.ValueKind == JsonValueKind.String)
            {
                claims.Add(new Claim(property.Name, property.Value.GetString()!, ClaimValueTypes.String, issuer));
            }
            else if (property.Name == "groups" && property.Value.ValueKind == JsonValueKind.Array)
            {
                claims.AddRange(property.Value.EnumerateArray().Where(g => g.ValueKind == JsonValueKind.String).Select(g => new Claim("groups", g.GetString()!, ClaimValueTypes.String, issuer)));
            }
        }

        return claims;
    }

    private static string? Check(string token, string publicKey, string audience, DateTimeOffset now, TimeSpan skew, out JsonElement payload)
    {
        payload = default;
        var parts = token.Length <= MaxLength ? token.Split('.') : [];
        if (parts.Length != 3)
        {
            return "not a compact JWT";
        }

        if (Decode(parts[0]) is not { } headerBytes || Decode(parts[1]) is not { } payloadBytes || Decode(parts[2]) is not { Length: 64 } signature)
        {
            return "not base64url, or a signature of the wrong size";
        }

        try
        {
            using var header = JsonDocument.Parse(headerBytes);
            if (!header.RootElement.TryGetProperty("alg", out var alg) || alg.ValueKind != JsonValueKind.String || alg.GetString() != "ES256")
            {
                return "the algorithm is not ES256";
            }

            using var key = ECDsa.Create();
            key.ImportSubjectPublicKeyInfo(Convert.FromBase64String(publicKey), out _);
            if (!key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
            {
                return OtherKey(header.RootElement, payloadBytes, publicKey) ?? "the signature is not the edge's";
            }

            payload = JsonDocument.Parse(payloadBytes).RootElement.Clone();
        }
        catch (Exception ex) when (ex is JsonException or CryptographicException or FormatException)
        {
            return "malformed: " + ex.GetType().Name;
        }

        return CheckClaims(payload, audience, now, skew);
    }

    private static string? CheckClaims(JsonElement payload, string audience, DateTimeOffset now, TimeSpan skew)
    {
        if (payload.ValueKind != JsonValueKind.Object)
        {
            return "the payload is not a JSON object";
        }

        if (String(payload, "iss") is not { Length: > 0 })
        {
            return "it names no issuing edge";
        }

        if (!string.Equals(String(payload, "aud"), audience, StringComparison.OrdinalIgnoreCase))
        {
            return $"it is for '{String(payload, "aud")}', not for '{audience}'";
        }

        if (Seconds(payload, "exp") is not { } exp || Seconds(payload, "nbf") is not { } nbf)
        {
            return "it has no exp or nbf";
        }

        if (now > exp + skew)
        {
            return $"it expired at {exp:O}";
        }

        if (now + skew < nbf || exp - nbf > MaxLifetime)
        {
            return "its lifetime is not now, or is longer than 5 minutes";
        }

        return String(payload, "sub") is { Length: > 0 } ? null : "it has no sub";
    }

    /// <summary>
    /// Why a signature fails when the assertion names another key than the connection's (<c>kid</c>, the
    /// first 96 bits of the key's SHA-256, as the edge makes it): an edge of a cluster that does not share
    /// <c>access-signing.key</c> signed it. Only names made of base64url and host characters are repeated.
    /// </summary>
    private static string? OtherKey(JsonElement header, byte[] payloadBytes, string publicKey)
    {
        if (!header.TryGetProperty("kid", out var kid) || kid.ValueKind != JsonValueKind.String || kid.GetString() is not { } keyId || !IsPlainName(keyId))
        {
            return null;
        }

        var own = Convert.ToBase64String(SHA256.HashData(Convert.FromBase64String(publicKey)).AsSpan(0, 12)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        if (keyId == own)
        {
            return null;
        }

        using var payload = JsonDocument.Parse(payloadBytes);
        var issuer = payload.RootElement.ValueKind == JsonValueKind.Object && String(payload.RootElement, "iss") is { } iss && IsPlainName(iss) ? $"edge '{iss}'" : "another edge";
        return $"it is signed by {issuer} with key {keyId}, not with key {own} that this connection's edge published: the edges of the cluster do not share access-signing.key";
    }

    private static bool IsPlainName(string text) =>
        text.Length is > 0 and <= 64 && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    private static string? String(JsonElement payload, string name) =>
        payload.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static DateTimeOffset? Seconds(JsonElement payload, string name) =>
        payload.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var seconds)
            && seconds is > 0 and < 253402300799 ? DateTimeOffset.FromUnixTimeSeconds(seconds) : null;

    private static byte[]? Decode(string part)
    {
        try
        {
            return part.Contains('=', StringComparison.Ordinal) ? null : System.Buffers.Text.Base64Url.DecodeFromChars(part);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
