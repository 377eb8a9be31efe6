using System.CommandLine;
using System.Globalization;

namespace Tunnel.Edge.Commands;

/// <summary>The commands that act on a running edge through its admin API: list its routes, drain a connector.</summary>
internal static class AdminCommands
{
    public static Command Routes()
    {
        var admin = AdminClient.UrlOption();
        var token = AdminClient.TokenFileOption();
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "Read the admin token from this edge directory's admin.token." };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON as it is." };
        var command = new Command("routes", "List a running edge's routes: hostname, connectors, connections with edge and uptime.") { admin, token, dir, json };
        command.SetAction(async (result, cancellationToken) =>
            await AdminClient.CallAsync(result, admin, token, dir, HttpMethod.Get, "/api/v1/routes", null, document =>
            {
                if (result.GetValue(json))
                {
                    Console.WriteLine(document.GetRawText());
                    return;
                }

                var routes = document.GetProperty("routes");
                if (routes.GetArrayLength() == 0)
                {
                    Console.WriteLine("No routes: no origin is connected.");
                }

                foreach (var route in routes.EnumerateArray())
                {
                    Console.WriteLine(route.GetProperty("hostname").GetString());
                    foreach (var connector in route.GetProperty("connectors").EnumerateArray())
                    {
                        Console.WriteLine($"  connector {connector.GetProperty("connectorId").GetString()} (credential {connector.GetProperty("credentialId").GetString()})");
                        foreach (var connection in connector.GetProperty("connections").EnumerateArray())
                        {
                            var uptime = TimeSpan.FromSeconds(connection.GetProperty("uptimeSeconds").GetDouble());
                            var draining = connection.GetProperty("draining").GetBoolean() ? ", draining" : "";

                            // An older edge's answer has no readiness.
                            draining += connection.TryGetProperty("notReady", out var notReady) && notReady.GetBoolean() ? ", not ready" : "";
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"    {connection.GetProperty("id").GetString()}  edge {connection.GetProperty("edge").GetString()}  from {connection.GetProperty("remote").GetString()}  up {(int)uptime.TotalHours}:{uptime.Minutes:00}:{uptime.Seconds:00}  {connection.GetProperty("requests").GetInt64()} requests{draining}"));
                        }
                    }
                }
            }, cancellationToken).ConfigureAwait(false));
        return command;
    }

    public static Command Drain()
    {
        var admin = AdminClient.UrlOption();
        var token = AdminClient.TokenFileOption();
        var dir = new Option<DirectoryInfo?>("--dir") { Description = "Read the admin token from this edge directory's admin.token." };
        var connector = new Argument<string>("connector") { Description = "The connector id (tunnel-edge routes shows it)." };
        var command = new Command("drain", "Ask a connector to move its tunnels off this edge (it dials replacements first; no request is lost).") { connector, admin, token, dir };
        command.SetAction(async (result, cancellationToken) =>
            await AdminClient.CallAsync(result, admin, token, dir, HttpMethod.Post, $"/api/v1/connectors/{Uri.EscapeDataString(result.GetValue(connector)!)}/drain", "", document =>
                Console.WriteLine($"Asked connector {document.GetProperty("connectorId").GetString()} to move {document.GetProperty("connections").GetInt32()} connection(s)."),
                cancellationToken).ConfigureAwait(false));
        return command;
    }
}
