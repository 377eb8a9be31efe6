using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Admin;

/// <summary>
/// The admin API under <c>/api/v1/</c> on the admin port: routes, connectors, draining a connector and
/// revoking a credential. Every request must come from <see cref="EdgeOptions.AdminAllowedNetworks"/>
/// (else 403) and carry the bearer token of <see cref="EdgeOptions.AdminTokenPath"/> (else 401).
/// </summary>
internal sealed class AdminApi
{
    /// <summary>The path prefix the API answers under.</summary>
    public const string Prefix = "/api/";

    /// <summary>
    /// The largest request body the admin port takes (a revocation's reason is the only body; it is for
    /// humans). Larger is refused with 413 from its Content-Length before anything is read, and a body
    /// without one is read no further than this.
    /// </summary>
    public const int MaxRequestBodyBytes = 4096;

    private readonly EdgeOptions _options;
    private readonly RouteTable _routes;
    private readonly EdgeCredentials _credentials;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string? _token;
    private readonly IPNetwork[] _allowed;
    private readonly Telemetry.EdgeMetrics _metrics;

    /// <summary>Reads the token file and parses the allowed networks; a problem with either stops the edge at start.</summary>
    public AdminApi(EdgeOptions options, RouteTable routes, EdgeCredentials credentials, TimeProvider time, ILoggerFactory loggers, Telemetry.EdgeMetrics metrics)
    {
        _options = options;
        _metrics = metrics;
        _routes = routes;
        _credentials = credentials;
        _time = time;
        _logger = loggers.CreateLogger("Tunnel.Edge.Admin");
        _token = options.AdminTokenPath is { Length: > 0 } path ? AdminToken.Load(path) : null;
        _allowed = options.AdminAllowedNetworks.Select(ParseNetwork).ToArray();
    }

    /// <summary>Answers one API request.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var remote = context.Connection.RemoteIpAddress is { } ip && ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : context.Connection.RemoteIpAddress;
        if (_token is null)
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, "The admin API is off: the edge has no admin token (AdminTokenPath; tunnel-edge init writes admin.token).").ConfigureAwait(false);
            return;
        }

        if (remote is null || !_allowed.Any(n => n.Contains(remote)))
        {
            await RefuseAsync(context, remote, StatusCodes.Status403Forbidden, $"{remote} is not in the admin API's allowed networks ({string.Join(", ", _options.AdminAllowedNetworks)})").ConfigureAwait(false);
            return;
        }

        var authorization = request.Headers.Authorization.ToString();
        var presented = authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim() : null;
        if (!AdminToken.Matches(_token, presented))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await RefuseAsync(context, remote, StatusCodes.Status401Unauthorized, presented is null ? "no bearer token" : "wrong bearer token").ConfigureAwait(false);
            return;
        }

        var segments = (request.Path.Value ?? "").Trim('/').Split('/');
        switch (segments)
        {
            case ["api", "v1", "routes"] when HttpMethods.IsGet(request.Method):
                await WriteAsync(context, StatusCodes.Status200OK, new RoutesResponse(Routes()), AdminJsonContext.Default.RoutesResponse).ConfigureAwait(false);
                return;
            case ["api", "v1", "connectors"] when HttpMethods.IsGet(request.Method):
                await WriteAsync(context, StatusCodes.Status200OK, new ConnectorsResponse(Connectors(_routes.Connections())), AdminJsonContext.Default.ConnectorsResponse).ConfigureAwait(false);
                return;
            case ["api", "v1", "connectors", var connectorId, "drain"] when HttpMethods.IsPost(request.Method):
                await DrainAsync(context, Uri.UnescapeDataString(connectorId)).ConfigureAwait(false);
                return;
            case ["api", "v1", "credentials", "revoked"] when HttpMethods.IsGet(request.Method):
                await WriteAsync(context, StatusCodes.Status200OK, new RevokedResponse(_credentials.Revocations.Entries), AdminJsonContext.Default.RevokedResponse).ConfigureAwait(false);
                return;
            case ["api", "v1", "credentials", var credentialId, "revoke"] when HttpMethods.IsPost(request.Method):
                await RevokeAsync(context, Uri.UnescapeDataString(credentialId)).ConfigureAwait(false);
                return;
            case ["api", "v1", "dns"] when HttpMethods.IsGet(request.Method):
                await Dns.DnsServices.WriteRecordsAsync(context).ConfigureAwait(false);
                return;
            case ["api", "v1", "access", "service-tokens"] when HttpMethods.IsGet(request.Method):
                await Access.SignIn.ServiceTokenAdmin.ListAsync(context).ConfigureAwait(false);
                return;
            case ["api", "v1", "access", "service-tokens", var clientId, "revoke"] when HttpMethods.IsPost(request.Method):
                await Access.SignIn.ServiceTokenAdmin.RevokeAsync(context, Uri.UnescapeDataString(clientId), _logger).ConfigureAwait(false);
                return;
            case ["api", "v1", "certificates"] when HttpMethods.IsGet(request.Method):
                await Certificates.Acme.AcmeStatus.WriteAsync(context).ConfigureAwait(false);
                return;
            default:
                await WriteErrorAsync(context, StatusCodes.Status404NotFound, "Unknown API call. GET /api/v1/routes, GET /api/v1/connectors, POST /api/v1/connectors/{id}/drain, GET /api/v1/credentials/revoked, POST /api/v1/credentials/{id}/revoke, GET /api/v1/certificates, GET /api/v1/dns, GET /api/v1/access/service-tokens, POST /api/v1/access/service-tokens/{clientId}/revoke.").ConfigureAwait(false);
                return;
        }
    }

    private async Task DrainAsync(HttpContext context, string connectorId)
    {
        var connections = _routes.Connections().Where(c => c.ConnectorId == connectorId).ToArray();
        if (connections.Length == 0)
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, $"No connector '{connectorId}' has a tunnel on this edge.").ConfigureAwait(false);
            return;
        }

        // The origin dials replacements (at another edge first) and then closes these, so no request is lost.
        foreach (var connection in connections)
        {
            connection.RequestMove();
        }

        EdgeLog.AdminAction(_logger, $"asked connector {connectorId} to move its {connections.Length} tunnel connection(s) elsewhere");
        await WriteAsync(context, StatusCodes.Status202Accepted, new DrainResponse(connectorId, connections.Length), AdminJsonContext.Default.DrainResponse).ConfigureAwait(false);
    }

    private async Task RevokeAsync(HttpContext context, string credentialId)
    {
        if (_options.RevocationListPath is not { Length: > 0 } path)
        {
            await WriteErrorAsync(context, StatusCodes.Status409Conflict, "The edge has no revocation list (RevocationListPath), so it cannot record a revocation.").ConfigureAwait(false);
            return;
        }

        if (credentialId.Length is 0 or > 64 || !credentialId.All(Uri.IsHexDigit))
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "A credential id is the certificate's serial number in hex (tunnel-edge credentials list shows it).").ConfigureAwait(false);
            return;
        }

        var reason = "";
        if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            try
            {
                var body = await ReadBoundedBodyAsync(context).ConfigureAwait(false);
                if (body is null)
                {
                    await RefuseBodyTooLargeAsync(context).ConfigureAwait(false);
                    return;
                }

                reason = JsonSerializer.Deserialize(body, AdminJsonContext.Default.RevokeRequest)?.Reason ?? "";
            }
            catch (JsonException ex)
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, $"The body must be JSON like {{\"reason\": \"...\"}}: {ex.Message}").ConfigureAwait(false);
                return;
            }
        }

        RevocationList list;
        try
        {
            list = RevocationList.Revoke(path, credentialId, reason, _time.GetUtcNow());
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            await WriteErrorAsync(context, StatusCodes.Status500InternalServerError, ex.Message).ConfigureAwait(false);
            return;
        }

        _credentials.UseRevocations(list);
        var entry = list.Find(credentialId)!;
        var live = _routes.Connections().Count(c => string.Equals(c.CredentialId, entry.Id, StringComparison.OrdinalIgnoreCase));
        EdgeLog.AdminAction(_logger, $"revoked credential {entry.Id} ({(entry.Reason.Length > 0 ? entry.Reason : "no reason given")}); closing its {live} live tunnel connection(s)");
        await WriteAsync(context, StatusCodes.Status200OK, new RevokeResponse(entry, live), AdminJsonContext.Default.RevokeResponse).ConfigureAwait(false);
    }

    /// <summary>The body, read no further than <see cref="MaxRequestBodyBytes"/>; <c>null</c> when it is longer.</summary>
    private static async Task<byte[]?> ReadBoundedBodyAsync(HttpContext context)
    {
        var buffer = new byte[MaxRequestBodyBytes + 1];
        var length = 0;
        try
        {
            int read;
            while (length < buffer.Length && (read = await context.Request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                length += read;
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            // Kestrel's own cap (set by CheckBodySizeAsync) tripped first.
            return null;
        }

        return length > MaxRequestBodyBytes ? null : buffer[..length];
    }

    /// <summary>
    /// Refuses, before anything is read, a request whose declared body is over <see cref="MaxRequestBodyBytes"/>,
    /// and caps what Kestrel reads of one without a length; returns whether the request may go on.
    /// </summary>
    public async Task<bool> CheckBodySizeAsync(HttpContext context)
    {
        if (context.Request.ContentLength is > MaxRequestBodyBytes)
        {
            await RefuseBodyTooLargeAsync(context).ConfigureAwait(false);
            return false;
        }

        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxRequestBodyBytes;
        }

        return true;
    }

    /// <summary>Refuses a request for a Host the admin port does not answer to (DNS rebinding): 421, logged and counted.</summary>
    public Task RefuseHostAsync(HttpContext context)
    {
        var host = context.Request.Host.Value ?? "";
        var shown = host.Length > 100 ? host[..100] + "..." : host;
        EdgeLog.AdminRequestRefused(_logger, context.Request.Method, context.Request.Path.Value ?? "", RemoteOf(context)?.ToString() ?? "?", StatusCodes.Status421MisdirectedRequest, $"Host '{shown}' is not one of the admin port's names (localhost, its addresses, AdminHosts)");
        _metrics.AdminRequestRefused("host_not_allowed");
        context.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync("Misdirected request: the admin port answers only to its own names (see AdminHosts).\n", context.RequestAborted);
    }

    private Task RefuseBodyTooLargeAsync(HttpContext context)
    {
        EdgeLog.AdminRequestRefused(_logger, context.Request.Method, context.Request.Path.Value ?? "", RemoteOf(context)?.ToString() ?? "?", StatusCodes.Status413PayloadTooLarge, $"the request body is over {MaxRequestBodyBytes} bytes");
        _metrics.AdminRequestRefused("body_too_large");

        // The rest of the body is not read: the connection closes after the answer.
        context.Response.Headers.Connection = "close";
        return WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, $"The request body is over {MaxRequestBodyBytes} bytes.");
    }

    private static IPAddress? RemoteOf(HttpContext context) =>
        context.Connection.RemoteIpAddress is { } ip && ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : context.Connection.RemoteIpAddress;

    private List<RouteEntry> Routes()
    {
        return _routes.Snapshot().OrderBy(r => r.Key, StringComparer.Ordinal)
            .Select(r => new RouteEntry(r.Key, Connectors(r.Value)))
            .ToList();
    }

    private List<ConnectorEntry> Connectors(IEnumerable<TunnelConnection> connections)
    {
        var now = _time.GetUtcNow();
        return connections.GroupBy(c => c.ConnectorId).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new ConnectorEntry(g.Key, g.First().CredentialId, g.SelectMany(c => c.Hostnames).Distinct().Order(StringComparer.Ordinal).ToList(),
                g.OrderBy(c => c.ConnectionIndex).Select(c => new ConnectionEntry(c.Id, _options.Name, _options.Region, c.ConnectionIndex, c.Remote?.ToString() ?? "",
                    c.ConnectedAt, Math.Round((now - c.ConnectedAt).TotalSeconds, 1), c.InFlight, c.Requests, c.IsDraining, c.IsNotReady)).ToList()))
            .ToList();
    }

    private async Task RefuseAsync(HttpContext context, IPAddress? remote, int status, string reason)
    {
        EdgeLog.AdminRequestRefused(_logger, context.Request.Method, context.Request.Path.Value ?? "", remote?.ToString() ?? "?", status, reason);
        await WriteErrorAsync(context, status, status == StatusCodes.Status401Unauthorized ? "Send the admin token: Authorization: Bearer TOKEN." : "Forbidden: " + reason + ".").ConfigureAwait(false);
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string message) =>
        WriteAsync(context, status, new ErrorResponse(message), AdminJsonContext.Default.ErrorResponse);

    private static Task WriteAsync<T>(HttpContext context, int status, T body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        return JsonSerializer.SerializeAsync(context.Response.Body, body, type, context.RequestAborted);
    }

    /// <summary>Adds a problem for each <c>AdminAllowedNetworks</c> entry that is neither a network nor an address.</summary>
    public static void ValidateNetworks(EdgeOptions options, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var text in options.AdminAllowedNetworks)
        {
            if (!TryParseNetwork(text, out _))
            {
                errors.Add(NotANetwork(text));
            }
        }
    }

    private static IPNetwork ParseNetwork(string text) =>
        TryParseNetwork(text, out var network) ? network : throw new InvalidOperationException(NotANetwork(text));

    private static bool TryParseNetwork(string text, out IPNetwork network)
    {
        if (IPNetwork.TryParse(text, out network))
        {
            return true;
        }

        if (IPAddress.TryParse(text, out var address))
        {
            network = new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }

        return false;
    }

    private static string NotANetwork(string text) => $"AdminAllowedNetworks: '{text}' is not a network (CIDR like 10.0.0.0/8) or an IP address.";
}

internal sealed record ErrorResponse(string Error);

internal sealed record RoutesResponse(List<RouteEntry> Routes);

internal sealed record RouteEntry(string Hostname, List<ConnectorEntry> Connectors);

internal sealed record ConnectorsResponse(List<ConnectorEntry> Connectors);

internal sealed record ConnectorEntry(string ConnectorId, string CredentialId, List<string> Hostnames, List<ConnectionEntry> Connections);

internal sealed record ConnectionEntry(string Id, string Edge, string Region, int Slot, string Remote, DateTimeOffset ConnectedAt, double UptimeSeconds, int InFlight, long Requests, bool Draining, bool NotReady);

internal sealed record DrainResponse(string ConnectorId, int Connections);

internal sealed record RevokeRequest(string? Reason);

internal sealed record RevokeResponse(RevokedCredential Revoked, int LiveConnections);

internal sealed record RevokedResponse(IReadOnlyList<RevokedCredential> Revoked);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(RoutesResponse))]
[JsonSerializable(typeof(ConnectorsResponse))]
[JsonSerializable(typeof(DrainResponse))]
[JsonSerializable(typeof(RevokeRequest))]
[JsonSerializable(typeof(RevokeResponse))]
[JsonSerializable(typeof(RevokedResponse))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
