using System.CommandLine;

namespace Tunnel.Edge.Commands;

/// <summary>The commands for the sign-in's service tokens on a running edge, through its admin API.</summary>
internal static class AccessCommands
{
    /// <summary><c>tunnel-edge revoke-service-token {clientId}</c>: the token stops working on the edge's next request, and stays revoked over restarts.</summary>
    public static Command RevokeServiceToken()
    {
        var admin = AdminClient.UrlOption();
        var token = AdminClient.TokenFileOption();
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "Read the admin token from this edge directory's admin.token." };
        var clientId = new Argument<string>("client-id") { Description = "The service token's client id (Edge:Hosts:{host}:Access:ServiceTokens)." };
        var command = new Command("revoke-service-token", "Revoke a sign-in service token on a running edge, on every host it is configured for.") { clientId, admin, token, dir };
        command.SetAction(async (result, cancellationToken) =>
            await AdminClient.CallAsync(result, admin, token, dir, HttpMethod.Post, $"/api/v1/access/service-tokens/{Uri.EscapeDataString(result.GetValue(clientId)!)}/revoke", "", document =>
                Console.WriteLine(document.GetProperty("alreadyRevoked").GetBoolean()
                    ? $"Service token {document.GetProperty("clientId").GetString()} was revoked already."
                    : $"Revoked service token {document.GetProperty("clientId").GetString()} on {string.Join(", ", document.GetProperty("hosts").EnumerateArray().Select(h => h.GetString()))}."),
                cancellationToken).ConfigureAwait(false));
        return command;
    }
}
