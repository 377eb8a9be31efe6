namespace Tunnel.Edge.Access.SignIn;

/// <summary>
/// Sign-in for one <c>Edge:Hosts:{hostname}</c> entry (section <c>Edge:Hosts:{hostname}:Access</c>): the
/// edge signs visitors in with an OpenID Connect provider (authorization code with PKCE), keeps them in
/// a session cookie of its own, lets through those the policy allows, and sends the app a short-lived
/// signed assertion of who they are (<see cref="Protocol.TunnelHeaderNames.Identity"/>). Machines use
/// <see cref="ServiceTokens"/> instead.
/// </summary>
public sealed class EdgeHostAccessOptions
{
    /// <summary>The provider's issuer URL (<c>https://</c>); its discovery document is read from <c>{Authority}/.well-known/openid-configuration</c>.</summary>
    /// <remarks>Required unless the entry has only <see cref="ServiceTokens"/>.</remarks>
    public string? Authority { get; set; }

    /// <summary>The client id the provider gave this edge.</summary>
    /// <remarks>Required with <see cref="Authority"/>.</remarks>
    public string? ClientId { get; set; }

    /// <summary>A file holding the client secret (read once at start, surrounding whitespace trimmed).</summary>
    /// <remarks>Defaults to <c>null</c>: a public client, protected by PKCE alone.</remarks>
    public string? ClientSecretPath { get; set; }

    /// <summary>A PEM file of CA certificates to trust for the provider's HTTPS, besides the system's (a provider on a private CA).</summary>
    /// <remarks>Defaults to <c>null</c>: the system's trust store only.</remarks>
    public string? AuthorityCaPath { get; set; }

    /// <summary>The scopes asked for.</summary>
    /// <remarks>Defaults to <c>openid profile email</c> (and <c>openid</c> is always asked for).</remarks>
    public List<string>? Scopes { get; set; }

    /// <summary>E-mail addresses that may visit (any case). An address counts only when the provider did not say <c>email_verified: false</c>.</summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> AllowedEmails { get; set; } = [];

    /// <summary>E-mail domains whose every address may visit (<c>example.com</c>; no subdomains).</summary>
    /// <remarks>Defaults to empty.</remarks>
    public List<string> AllowedEmailDomains { get; set; } = [];

    /// <summary>The claim of the ID token that lists the visitor's groups.</summary>
    /// <remarks>Defaults to <c>groups</c>.</remarks>
    public string GroupClaim { get; set; } = "groups";

    /// <summary>Values of <see cref="GroupClaim"/> whose members may visit.</summary>
    /// <remarks>
    /// Defaults to empty. With all three lists empty nobody who signs in is allowed: the edge refuses to
    /// start rather than let any account of the provider in.
    /// </remarks>
    public List<string> AllowedGroups { get; set; } = [];

    /// <summary>How long a sign-in lasts; then the visitor signs in again. Not sliding.</summary>
    /// <remarks>Defaults to 8 hours; at most 7 days.</remarks>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Whether the assertion sent to the app carries the visitor's e-mail address, name and groups, besides <c>sub</c>.</summary>
    /// <remarks>Defaults to <c>true</c>.</remarks>
    public bool SendProfileClaims { get; set; } = true;

    /// <summary>Machine clients: each sends <c>Tunnel-Access-Client-Id</c> and <c>Tunnel-Access-Client-Secret</c>.</summary>
    /// <remarks>Defaults to none. Revoke one with the admin API (<c>POST /api/v1/access/service-tokens/{clientId}/revoke</c>).</remarks>
    public List<ServiceTokenOptions> ServiceTokens { get; set; } = [];
}

/// <summary>One service token: a client id and the SHA-256 of its secret (never the secret itself).</summary>
public sealed class ServiceTokenOptions
{
    /// <summary>The client id, sent in <c>Tunnel-Access-Client-Id</c>; it names the token in logs and in the app (<c>sub</c> is <c>service:{ClientId}</c>).</summary>
    /// <remarks>Required: letters, digits, <c>-</c>, <c>_</c>, <c>.</c>; at most 64.</remarks>
    public string ClientId { get; set; } = "";

    /// <summary>The SHA-256 of the secret, 64 hex digits (<c>printf %s "$secret" | sha256sum</c>). The secret must have at least 128 bits of entropy (<c>openssl rand -hex 32</c>).</summary>
    /// <remarks>Required.</remarks>
    public string SecretSha256 { get; set; } = "";
}
