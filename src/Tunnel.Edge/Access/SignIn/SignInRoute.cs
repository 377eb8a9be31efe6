using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>
/// One <c>Edge:Hosts</c> entry's <c>Access</c> section, compiled at start: its authentication schemes
/// (a cookie and an OpenID Connect scheme of its own, since each entry has its own provider client),
/// its policy and its service tokens.
/// </summary>
internal sealed class SignInRoute
{
    private readonly HashSet<string> _emails;
    private readonly HashSet<string> _domains;
    private readonly HashSet<string> _groups;
    private readonly Dictionary<string, byte[]> _tokens;

    public SignInRoute(string name, EdgeHostAccessOptions access)
    {
        Name = name;
        Options = access;
        CookieScheme = "tunnel-session:" + name;
        OidcScheme = "tunnel-oidc:" + name;
        _emails = access.AllowedEmails.Select(e => e.Trim()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        _domains = access.AllowedEmailDomains.Select(d => d.Trim().TrimStart('@')).ToHashSet(StringComparer.OrdinalIgnoreCase);
        _groups = access.AllowedGroups.ToHashSet(StringComparer.Ordinal);
        _tokens = access.ServiceTokens.ToDictionary(t => t.ClientId, t => Convert.FromHexString(t.SecretSha256), StringComparer.Ordinal);
    }

    /// <summary>The <c>Edge:Hosts</c> key, normalized (an exact name or <c>*.example.com</c>).</summary>
    public string Name { get; }

    public EdgeHostAccessOptions Options { get; }

    public string CookieScheme { get; }

    public string OidcScheme { get; }

    /// <summary>Whether visitors sign in with a provider (else the entry takes service tokens only).</summary>
    public bool HasSignIn => Options.Authority is not null;

    /// <summary>Whether the policy lets a signed-in visitor (claims as <see cref="SignInClaims"/> names them) visit.</summary>
    public bool Allows(ClaimsPrincipal visitor)
    {
        if (visitor.FindFirst(SignInClaims.Email)?.Value is { Length: > 0 } email)
        {
            var at = email.LastIndexOf('@');
            if (_emails.Contains(email) || (at > 0 && _domains.Contains(email[(at + 1)..])))
            {
                return true;
            }
        }

        return visitor.FindAll(SignInClaims.Groups).Any(g => _groups.Contains(g.Value));
    }

    /// <summary>
    /// The stored SHA-256 of a service token's secret; <c>null</c> when the client id is not one of this entry's.
    /// </summary>
    public byte[]? TokenHash(string clientId) => _tokens.TryGetValue(clientId, out var hash) ? hash : null;

    /// <summary>Whether <paramref name="secret"/> hashes to <paramref name="storedHash"/>, compared in constant time.</summary>
    public static bool SecretMatches(byte[] storedHash, string secret)
    {
        Span<byte> presented = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(secret), presented);
        return CryptographicOperations.FixedTimeEquals(presented, storedHash);
    }

    /// <summary>
    /// The claims the edge keeps of a signed-in visitor (the cookie stays small, and the app gets nothing
    /// more): <c>sub</c>, the e-mail address unless the provider said it is not verified, the name, the groups.
    /// </summary>
    public ClaimsPrincipal Reduce(ClaimsPrincipal fromProvider)
    {
        var claims = new List<Claim>();
        void Keep(string type, string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                claims.Add(new Claim(type, value));
            }
        }

        Keep(SignInClaims.Subject, fromProvider.FindFirst("sub")?.Value);
        var verified = fromProvider.FindFirst("email_verified")?.Value;
        var email = fromProvider.FindFirst("email")?.Value;
        if (!string.Equals(verified, "false", StringComparison.OrdinalIgnoreCase))
        {
            Keep(SignInClaims.Email, email);
        }

        Keep(SignInClaims.Name, fromProvider.FindFirst("name")?.Value ?? fromProvider.FindFirst("preferred_username")?.Value ?? email);
        foreach (var group in fromProvider.FindAll(Options.GroupClaim))
        {
            Keep(SignInClaims.Groups, group.Value);
        }

        return new ClaimsPrincipal(new ClaimsIdentity(claims, OidcScheme, SignInClaims.Name, SignInClaims.Groups));
    }

    /// <summary>The principal of a service token, as the app gets it: <c>sub</c> is <c>service:{clientId}</c>.</summary>
    public static ClaimsPrincipal ServicePrincipal(string clientId) =>
        new(new ClaimsIdentity([new Claim(SignInClaims.Subject, "service:" + clientId), new Claim(SignInClaims.Name, clientId)], "tunnel-service-token", SignInClaims.Name, SignInClaims.Groups));
}
