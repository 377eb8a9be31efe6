using Tunnel.Edge.Visitors.Passthrough;
using Tunnel.Protocol;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>Checks every <c>Edge:Hosts:{host}:Access</c> section at start (see <see cref="EdgeOptionsValidator"/>).</summary>
internal static class SignInValidation
{
    private static readonly TimeSpan MaxSessionLifetime = TimeSpan.FromDays(7);

    /// <summary>Adds every problem of the <c>Access</c> sections to <paramref name="problems"/>.</summary>
    public static void Validate(EdgeOptions options, List<string> problems)
    {
        foreach (var (key, host) in options.Hosts ?? [])
        {
            if (host?.Access is not { } access)
            {
                continue;
            }

            var label = $"Hosts:{key}:Access";
            CheckPassthrough(options, key, host, problems);
            CheckProvider(label, access, problems);
            if (access.SessionLifetime <= TimeSpan.Zero || access.SessionLifetime > MaxSessionLifetime)
            {
                problems.Add($"{label}:SessionLifetime is {access.SessionLifetime}; it must be more than 0 and at most 7 days.");
            }

            var clientIds = new HashSet<string>(StringComparer.Ordinal);
            foreach (var token in access.ServiceTokens)
            {
                CheckToken(label, token, problems);
                if (!clientIds.Add(token.ClientId))
                {
                    problems.Add($"{label}:ServiceTokens: the client id '{token.ClientId}' is listed twice.");
                }
            }
        }
    }

    /// <summary>
    /// Item of the issue: the edge does not see a passthrough route's requests, so it cannot sign visitors in
    /// to one. A host with an <c>Access</c> section and no <c>ConnectionModes</c> takes requests only (see
    /// <see cref="ConnectionModePolicy"/>); one that names modes, or a TCP route for it, is refused here.
    /// </summary>
    private static void CheckPassthrough(EdgeOptions options, string key, EdgeHostOptions host, List<string> problems)
    {
        if (host.ConnectionModes is { Count: > 0 } modes)
        {
            problems.Add($"Hosts:{key}: it has an Access section and ConnectionModes ({string.Join(", ", modes)}): a passthrough route's requests never reach the edge's sign-in, so they cannot be behind one. Remove ConnectionModes (or set it to []) or the Access section.");
        }

        if (!HostnameRules.TryNormalize(key, out var name, out _))
        {
            return;
        }

        foreach (var route in options.Connections.TcpRoutes)
        {
            if (HostnameRules.TryNormalize(route.Hostname, out var tcpName, out _) && (tcpName == name || HostnameRules.WildcardFor(tcpName) == name))
            {
                problems.Add($"Connections:TcpRoutes: '{route.Hostname}' (port {route.Port}) has sign-in (Hosts:{key}:Access), but a TCP route's connections never reach the edge's sign-in. Remove the TCP route or the Access section.");
            }
        }
    }

    private static void CheckProvider(string label, EdgeHostAccessOptions access, List<string> problems)
    {
        if (access.Authority is null)
        {
            if (access.ServiceTokens.Count == 0)
            {
                problems.Add($"{label}: it has neither an Authority (sign-in with an OpenID Connect provider) nor ServiceTokens, so nobody could visit.");
            }

            return;
        }

        if (!Uri.TryCreate(access.Authority, UriKind.Absolute, out var authority) || authority.Scheme != Uri.UriSchemeHttps)
        {
            problems.Add($"{label}:Authority '{access.Authority}' is not an https:// URL (the provider's issuer).");
        }

        if (string.IsNullOrWhiteSpace(access.ClientId))
        {
            problems.Add($"{label}:ClientId is required with an Authority (the client id the provider gave the edge).");
        }

        foreach (var (what, path) in new[] { ("ClientSecretPath", access.ClientSecretPath), ("AuthorityCaPath", access.AuthorityCaPath) })
        {
            if (path is not null && !File.Exists(path))
            {
                problems.Add($"{label}:{what} '{path}' does not exist.");
            }
        }

        if (access.AllowedEmails.Count == 0 && access.AllowedEmailDomains.Count == 0 && access.AllowedGroups.Count == 0)
        {
            problems.Add($"{label}: AllowedEmails, AllowedEmailDomains and AllowedGroups are all empty, so nobody who signs in could visit. List who may.");
        }

        if (string.IsNullOrWhiteSpace(access.GroupClaim))
        {
            problems.Add($"{label}:GroupClaim is empty; it names the ID token's claim of groups (groups by default).");
        }
    }

    private static void CheckToken(string label, ServiceTokenOptions token, List<string> problems)
    {
        if (token.ClientId.Length is 0 or > 64 || !token.ClientId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            problems.Add($"{label}:ServiceTokens: the client id '{token.ClientId}' must be 1 to 64 letters, digits, '-', '_' or '.'.");
        }

        if (token.SecretSha256.Length != 64 || !token.SecretSha256.All(Uri.IsHexDigit))
        {
            problems.Add($"{label}:ServiceTokens: '{token.ClientId}' needs SecretSha256, the SHA-256 of its secret as 64 hex digits (printf %s \"$secret\" | sha256sum), never the secret itself.");
        }
    }
}
