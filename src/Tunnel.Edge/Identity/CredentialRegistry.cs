using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tunnel.Edge.Identity;

/// <summary>What the edge remembers of a credential it issued: no key, only what an operator needs to find and revoke it.</summary>
/// <param name="Id">The credential id (the certificate's serial, upper-case hex).</param>
/// <param name="Label">The operator's label (<c>--label</c>), or empty.</param>
/// <param name="Hostnames">The hostnames it may serve.</param>
/// <param name="Issuer">The subject of the CA that signed it.</param>
/// <param name="IssuedAt">When it was issued.</param>
/// <param name="NotBefore">When its certificate becomes valid.</param>
/// <param name="NotAfter">When its certificate expires.</param>
/// <param name="Exclusive">Whether it claims its exact hostnames exclusively (<c>issue --exclusive</c>, see <see cref="ExclusiveClaim"/>).</param>
internal sealed record IssuedCredential(string Id, string Label, IReadOnlyList<string> Hostnames, string Issuer, DateTimeOffset IssuedAt, DateTimeOffset NotBefore, DateTimeOffset NotAfter, bool Exclusive = false);

/// <summary>
/// The list of credentials the edge's CA issued (<c>credentials.json</c> in the edge directory),
/// written by <c>tunnel-edge issue</c> and read by <c>tunnel-edge credentials list</c>.
/// </summary>
internal static class CredentialRegistry
{
    /// <summary>Reads the registry; a missing file is an empty list, a corrupt one throws naming the file.</summary>
    public static IReadOnlyList<IssuedCredential> Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            return [];
        }

        var text = SecureFile.Read(path, "credential registry");
        try
        {
            var file = JsonSerializer.Deserialize(text, RegistryJsonContext.Default.RegistryFile);
            if (file?.Credentials is not { } credentials || credentials.Any(c => string.IsNullOrWhiteSpace(c.Id)))
            {
                throw new InvalidOperationException($"The credential registry '{path}' is corrupt: it needs a \"credentials\" array whose entries each have an \"id\".");
            }

            return credentials;
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"The credential registry '{path}' is corrupt: {ex.Message}", ex);
        }
    }

    /// <summary>Appends a credential to the registry.</summary>
    public static void Add(string path, IssuedCredential credential)
    {
        ArgumentNullException.ThrowIfNull(credential);
        var credentials = Load(path).Append(credential).ToArray();
        SecureFile.WriteAtomically(path, JsonSerializer.Serialize(new RegistryFile(credentials), RegistryJsonContext.Default.RegistryFile) + "\n", secret: false);
    }
}

internal sealed record RegistryFile(IReadOnlyList<IssuedCredential>? Credentials);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RegistryFile))]
internal sealed partial class RegistryJsonContext : JsonSerializerContext;
