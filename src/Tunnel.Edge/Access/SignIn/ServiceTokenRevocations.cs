using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>
/// Service tokens revoked with the admin API, kept in <c>access-revoked-tokens.json</c> beside the edge's
/// server key so a revocation outlives a restart. A revocation names the client id and the hash of the
/// secret it revoked: the same client id configured again with a new secret works again.
/// </summary>
internal sealed class ServiceTokenRevocations
{
    /// <summary>The file's name, beside the edge's server key.</summary>
    public const string FileName = "access-revoked-tokens.json";

    private readonly string _path;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private List<RevokedServiceToken> _entries;

    public ServiceTokenRevocations(string path, TimeProvider time)
    {
        _path = path;
        _time = time;
        _entries = File.Exists(path) ? Parse(SecureFile.Read(path, "service token revocations"), path) : [];
    }

    public IReadOnlyList<RevokedServiceToken> Entries
    {
        get
        {
            lock (_lock)
            {
                return [.. _entries];
            }
        }
    }

    public bool IsRevoked(string clientId, byte[] secretHash)
    {
        var hash = Convert.ToHexStringLower(secretHash);
        lock (_lock)
        {
            return _entries.Any(e => e.ClientId == clientId && string.Equals(e.SecretSha256, hash, StringComparison.OrdinalIgnoreCase));
        }
    }

    /// <summary>Records the revocation on disk, then in memory; <c>false</c> when it was revoked already.</summary>
    public bool Revoke(string clientId, byte[] secretHash)
    {
        lock (_lock)
        {
            if (IsRevoked(clientId, secretHash))
            {
                return false;
            }

            List<RevokedServiceToken> next = [.. _entries, new RevokedServiceToken(clientId, Convert.ToHexStringLower(secretHash), _time.GetUtcNow())];
            SecureFile.WriteAtomically(_path, JsonSerializer.Serialize(next, SignInJsonContext.Default.ListRevokedServiceToken), secret: false);
            _entries = next;
            return true;
        }
    }

    private static List<RevokedServiceToken> Parse(string json, string path)
    {
        try
        {
            return JsonSerializer.Deserialize(json, SignInJsonContext.Default.ListRevokedServiceToken) ?? [];
        }
        catch (JsonException ex)
        {
            throw new InvalidOperationException($"The service token revocations '{path}' are not valid JSON: {ex.Message}", ex);
        }
    }
}

/// <summary>One revoked service token.</summary>
internal sealed record RevokedServiceToken(string ClientId, string SecretSha256, DateTimeOffset RevokedAt);

/// <summary>A service token as the admin API lists it (never its hash).</summary>
internal sealed record ServiceTokenEntry(string Host, string ClientId, bool Revoked);

/// <summary>The admin API's answer to a revocation.</summary>
internal sealed record ServiceTokenRevoked(string ClientId, string[] Hosts, bool AlreadyRevoked);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(List<RevokedServiceToken>))]
[JsonSerializable(typeof(List<ServiceTokenEntry>))]
[JsonSerializable(typeof(ServiceTokenRevoked))]
[JsonSerializable(typeof(string))]
internal sealed partial class SignInJsonContext : JsonSerializerContext;

/// <summary>
/// The admin API's calls for service tokens (<c>/api/v1/access/service-tokens</c>), reached after the
/// admin API's own network and token checks.
/// </summary>
internal static class ServiceTokenAdmin
{
    /// <summary>Lists every configured service token, by host, and whether it is revoked.</summary>
    public static Task ListAsync(HttpContext context)
    {
        if (context.RequestServices.GetService(typeof(SignInRoutes)) is not SignInRoutes routes)
        {
            return WriteAsync(context, StatusCodes.Status200OK, JsonSerializer.Serialize(new List<ServiceTokenEntry>(), SignInJsonContext.Default.ListServiceTokenEntry));
        }

        var entries = routes.All
            .SelectMany(r => r.Options.ServiceTokens.Select(t => new ServiceTokenEntry(r.Name, t.ClientId, routes.Revocations.IsRevoked(t.ClientId, r.TokenHash(t.ClientId)!))))
            .ToList();
        return WriteAsync(context, StatusCodes.Status200OK, JsonSerializer.Serialize(entries, SignInJsonContext.Default.ListServiceTokenEntry));
    }

    /// <summary>Revokes the client id's token on every host it is configured for; it stops working on the next request.</summary>
    public static Task RevokeAsync(HttpContext context, string clientId, Microsoft.Extensions.Logging.ILogger logger)
    {
        var routes = context.RequestServices.GetService(typeof(SignInRoutes)) as SignInRoutes;
        var holders = routes?.All.Where(r => r.TokenHash(clientId) is not null).ToArray() ?? [];
        if (routes is null || holders.Length == 0)
        {
            return WriteAsync(context, StatusCodes.Status404NotFound, $"{{\"error\":{JsonSerializer.Serialize($"No host has a service token '{clientId}'.", SignInJsonContext.Default.String)}}}");
        }

        var revoked = false;
        foreach (var route in holders)
        {
            revoked |= routes.Revocations.Revoke(clientId, route.TokenHash(clientId)!);
        }

        var hosts = holders.Select(r => r.Name).ToArray();
        EdgeLog.AdminAction(logger, $"revoked service token {clientId} (hosts {string.Join(", ", hosts)})");
        var body = new ServiceTokenRevoked(clientId, hosts, AlreadyRevoked: !revoked);
        return WriteAsync(context, StatusCodes.Status200OK, JsonSerializer.Serialize(body, SignInJsonContext.Default.ServiceTokenRevoked));
    }

    private static Task WriteAsync(HttpContext context, int status, string json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(json + "\n", context.RequestAborted);
    }
}
