using System.Security.Cryptography;
using System.Text;

namespace Tunnel.Edge.Identity;

/// <summary>The admin API's bearer token: read from its file, compared in constant time.</summary>
internal static class AdminToken
{
    // Shorter than this is guessable, whoever wrote the file.
    private const int MinimumLength = 16;

    /// <summary>Reads the token file; a missing, unreadable, empty or short token throws naming the file.</summary>
    public static string Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Protocol.Credentials.SecretFilePermissions.Problem(path, "admin token file") is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        var token = SecureFile.Read(path, "admin token file").Trim();
        if (token.Length < MinimumLength || token.Any(char.IsWhiteSpace))
        {
            throw new InvalidOperationException($"The admin token file '{path}' is corrupt: it must hold one token of at least {MinimumLength} characters and no spaces.");
        }

        return token;
    }

    /// <summary>Whether <paramref name="presented"/> is the token, in time that does not depend on where they differ.</summary>
    public static bool Matches(string expected, string? presented)
    {
        ArgumentNullException.ThrowIfNull(expected);
        if (presented is null)
        {
            return false;
        }

        // Hashing first makes the comparison's time independent of the lengths too.
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(expected)), SHA256.HashData(Encoding.UTF8.GetBytes(presented)));
    }
}
