using System.Text.Json;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>The directory's URLs and what its <c>meta</c> says (RFC 8555 section 7.1.1; ARI, RFC 9773).</summary>
internal sealed record AcmeDirectory(string NewNonce, string NewAccount, string NewOrder, string? RenewalInfo, bool ExternalAccountRequired, string? TermsOfService)
{
    public static AcmeDirectory Parse(JsonElement json)
    {
        var meta = json.TryGetProperty("meta", out var m) ? m : default;
        return new AcmeDirectory(
            Required(json, "newNonce"),
            Required(json, "newAccount"),
            Required(json, "newOrder"),
            Optional(json, "renewalInfo"),
            meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("externalAccountRequired", out var eab) && eab.ValueKind == JsonValueKind.True,
            meta.ValueKind == JsonValueKind.Object ? Optional(meta, "termsOfService") : null);
    }

    internal static string Required(JsonElement json, string name) =>
        Optional(json, name) ?? throw new AcmeException("malformed_response", $"The CA's answer has no '{name}'.");

    internal static string? Optional(JsonElement json, string name) =>
        json.ValueKind == JsonValueKind.Object && json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

/// <summary>An order (section 7.1.3) as last read.</summary>
internal sealed record AcmeOrder(string Url, string Status, IReadOnlyList<string> Authorizations, string Finalize, string? Certificate, AcmeException? Error)
{
    public static AcmeOrder Parse(string url, JsonElement json) => new(
        url,
        AcmeDirectory.Required(json, "status"),
        json.TryGetProperty("authorizations", out var a) && a.ValueKind == JsonValueKind.Array ? [.. a.EnumerateArray().Select(e => e.GetString()!).Where(s => s is not null)] : [],
        AcmeDirectory.Required(json, "finalize"),
        AcmeDirectory.Optional(json, "certificate"),
        json.TryGetProperty("error", out var error) ? AcmeClient.Problem(error, null, null) : null);
}

/// <summary>An authorization (section 7.1.4) and its challenges.</summary>
internal sealed record AcmeAuthorization(string Url, string Name, bool Wildcard, string Status, IReadOnlyList<AcmeChallenge> Challenges)
{
    public static AcmeAuthorization Parse(string url, JsonElement json)
    {
        var identifier = json.GetProperty("identifier");
        var challenges = json.TryGetProperty("challenges", out var c) && c.ValueKind == JsonValueKind.Array
            ? c.EnumerateArray().Select(AcmeChallenge.Parse).ToArray()
            : [];
        return new AcmeAuthorization(url, AcmeDirectory.Required(identifier, "value"),
            json.TryGetProperty("wildcard", out var w) && w.ValueKind == JsonValueKind.True, AcmeDirectory.Required(json, "status"), challenges);
    }

    /// <summary>The first challenge's error, for a failed authorization's log line.</summary>
    public AcmeException? Error => Challenges.Select(c => c.Error).FirstOrDefault(e => e is not null);
}

/// <summary>A challenge (section 8) of an authorization.</summary>
internal sealed record AcmeChallenge(string Type, string Url, string? Token, string Status, AcmeException? Error)
{
    public static AcmeChallenge Parse(JsonElement json) => new(
        AcmeDirectory.Required(json, "type"),
        AcmeDirectory.Required(json, "url"),
        AcmeDirectory.Optional(json, "token"),
        AcmeDirectory.Optional(json, "status") ?? "pending",
        json.TryGetProperty("error", out var error) ? AcmeClient.Problem(error, null, null) : null);
}
