using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tunnel.Edge.Identity;

/// <summary>One revoked credential.</summary>
/// <param name="Id">The credential id (the origin certificate's serial, upper-case hex).</param>
/// <param name="RevokedAt">When it was revoked.</param>
/// <param name="Reason">The operator's reason, shown to the origin in its refusal.</param>
internal sealed record RevokedCredential(string Id, DateTimeOffset RevokedAt, string Reason);

/// <summary>
/// The edge's revocation list (<c>revoked.json</c>): credentials that may never register again and
/// whose live connections the edge closes. The file is the source of truth, so it survives restarts and
/// a <c>tunnel-edge revoke</c> run next to a live edge takes effect there too.
/// </summary>
internal sealed class RevocationList
{
    private readonly FrozenDictionary<string, RevokedCredential> _byId;

    /// <summary>Creates a list from its entries; a later entry for the same id wins.</summary>
    public RevocationList(IEnumerable<RevokedCredential> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var byId = new Dictionary<string, RevokedCredential>(StringComparer.OrdinalIgnoreCase);
        foreach (var entry in entries)
        {
            byId[entry.Id] = entry;
        }

        _byId = byId.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        Entries = [.. byId.Values.OrderBy(e => e.RevokedAt)];
    }

    /// <summary>An empty list.</summary>
    public static RevocationList Empty { get; } = new([]);

    /// <summary>Every revoked credential, oldest first.</summary>
    public IReadOnlyList<RevokedCredential> Entries { get; }

    /// <summary>The revocation of <paramref name="credentialId"/>, or <c>null</c> when it is not revoked.</summary>
    public RevokedCredential? Find(string credentialId) => _byId.GetValueOrDefault(credentialId);

    /// <summary>
    /// Loads the list. A missing file is an empty list (nothing revoked yet); an unreadable or corrupt one
    /// throws <see cref="InvalidOperationException"/> naming the file, because guessing would either
    /// let revoked credentials back in or lock every origin out.
    /// </summary>
    public static RevocationList Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            return Empty;
        }

        var text = SecureFile.Read(path, "revocation list");
        RevocationFile? file;
        try
        {
            file = JsonSerializer.Deserialize(text, RevocationJsonContext.Default.RevocationFile);
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"The revocation list '{path}' is corrupt: {ex.Message}", ex);
        }

        if (file?.Revoked is not { } entries || entries.Any(e => string.IsNullOrWhiteSpace(e.Id)))
        {
            throw new InvalidOperationException($"The revocation list '{path}' is corrupt: it needs a \"revoked\" array whose entries each have an \"id\".");
        }

        return new RevocationList(entries.Select(e => e with { Id = e.Id.Trim().ToUpperInvariant(), Reason = e.Reason ?? "" }));
    }

    /// <summary>
    /// Adds a revocation to the file (created when missing) and returns the new list. Revoking an id
    /// twice keeps the first entry.
    /// </summary>
    public static RevocationList Revoke(string path, string credentialId, string reason, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(credentialId);
        var current = Load(path);
        var id = credentialId.Trim().ToUpperInvariant();
        if (current.Find(id) is not null)
        {
            return current;
        }

        var updated = new RevocationList([.. current.Entries, new RevokedCredential(id, now, reason)]);
        SecureFile.WriteAtomically(path, JsonSerializer.Serialize(new RevocationFile(updated.Entries), RevocationJsonContext.Default.RevocationFile) + "\n", secret: false);
        return updated;
    }
}

internal sealed record RevocationFile(IReadOnlyList<RevokedCredential>? Revoked);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RevocationFile))]
internal sealed partial class RevocationJsonContext : JsonSerializerContext;
