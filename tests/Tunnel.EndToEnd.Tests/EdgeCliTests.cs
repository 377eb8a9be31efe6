using System.Diagnostics;
using HelloOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Protocol.Credentials;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>The operator's commands as real <c>tunnel-edge</c> processes: init, issue, credentials list, serve, routes, revoke, restart.</summary>
public class EdgeCliTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Init_issue_list_routes_and_revoke_work_as_commands_and_the_revocation_survives_a_restart()
    {
        var directory = Directory.CreateTempSubdirectory("tunnel-cli-").FullName;
        var apps = new List<WebApplication>();
        try
        {
            await RunAsync("init", "--dir", directory);
            var credentialPath = Path.Combine(directory, "hello.credential.json");
            var issued = await RunAsync("issue", "--dir", directory, "--domain", TunnelHarness.Hostname, "--edge", "127.0.0.1:7844", "--edge-server-name", "localhost", "--label", "hello-app", "--out", credentialPath);
            var credential = TunnelCredential.Load(credentialPath);
            Assert.Contains(credential.Id, issued, StringComparison.Ordinal);
            Assert.Equal([TunnelHarness.Hostname], credential.Hostnames);
            Assert.Equal(["127.0.0.1:7844"], credential.Edges);

            foreach (var secret in new[] { "ca.key", "edge.key", "admin.token", credentialPath })
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(directory, secret)));
            }

            var list = await RunAsync("credentials", "list", "--dir", directory);
            output.WriteLine(list);
            Assert.Matches($@"{credential.Id}\s+hello-app\s+hello\.test\s+\d{{4}}-\d\d-\d\d\s+no", list);

            await using (var edge = await EdgeProcess.StartAsync(directory, "cli-edge", "cli-region"))
            {
                // serve caps glibc's malloc arenas at one per core, unless the operator chose a number.
                if (Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is null)
                {
                    await Wait.UntilAsync(() => edge.Output.Contains($"glibc malloc arenas capped at {Environment.ProcessorCount}", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "serve logs the arena cap");
                }

                var admin = $"http://127.0.0.1:{edge.AdminPort}";
                var (origin, originLogs) = await StartOriginAsync(credential, edge.TunnelPort, directory);
                apps.Add(origin);

                string routes = "";
                await WaitAsync(async () =>
                {
                    routes = await RunAsync("routes", "--admin", admin, "--dir", directory);
                    return routes.Split('\n').Count(l => l.Contains("edge cli-edge", StringComparison.Ordinal)) == 4;
                }, "routes lists the origin's 4 connections");
                output.WriteLine(routes);
                Assert.StartsWith(TunnelHarness.Hostname, routes, StringComparison.Ordinal);
                Assert.Contains($"(credential {credential.Id})", routes, StringComparison.Ordinal);
                Assert.Matches(@"up \d+:\d\d:\d\d", routes);

                // Revoked with the edge running, through the file.
                var stopwatch = Stopwatch.StartNew();
                await RunAsync("revoke", "--dir", directory, credential.Id, "--reason", "cli test");
                await WaitAsync(async () => (await RunAsync("routes", "--admin", admin, "--dir", directory)).StartsWith("No routes", StringComparison.Ordinal), "the revoked credential's routes are gone");
                output.WriteLine($"routes gone {stopwatch.Elapsed.TotalSeconds:0.00} s after the revoke command");
                await Wait.UntilAsync(() => originLogs.Entries.Any(e => e.EventId.Name == "RegistrationRejected" && e.Message.Contains("credential_revoked", StringComparison.Ordinal) && e.Message.Contains("cli test", StringComparison.Ordinal)),
                    TimeSpan.FromSeconds(15), "the origin logs the revocation");
            }

            Assert.Contains("revoked", await RunAsync("credentials", "list", "--dir", directory), StringComparison.Ordinal);

            // A new edge process on the same directory still refuses the credential.
            await using (var restarted = await EdgeProcess.StartAsync(directory, "cli-edge-2", "cli-region"))
            {
                var (origin, originLogs) = await StartOriginAsync(credential, restarted.TunnelPort, directory);
                apps.Add(origin);
                await Wait.UntilAsync(() => originLogs.Entries.Any(e => e.EventId.Name == "RegistrationRejected" && e.Message.Contains("credential_revoked", StringComparison.Ordinal)),
                    TimeSpan.FromSeconds(15), "the restarted edge refuses the revoked credential");
                Assert.Contains("credential_revoked", restarted.Output, StringComparison.Ordinal);
            }
        }
        finally
        {
            foreach (var app in apps)
            {
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await app.StopAsync(stop.Token);
                await app.DisposeAsync();
            }

            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(EdgeDirectory.RevocationsFile, "{ \"revoked\": [ { \"id\": ")]
    [InlineData(EdgeDirectory.AdminTokenFile, "short\n")]
    [InlineData(EdgeDirectory.TrustedCasFile, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")]
    public async Task A_corrupt_state_file_stops_serve_at_start_naming_the_file(string file, string content)
    {
        var directory = Directory.CreateTempSubdirectory("tunnel-cli-").FullName;
        try
        {
            await RunAsync("init", "--dir", directory);
            await File.WriteAllTextAsync(Path.Combine(directory, file), content);
            var result = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--dir", directory, "--listen", "127.0.0.1", "--tunnel-port", "0", "--http-port", "0", "--admin-port", "0"], CommandTimeout);
            output.WriteLine(Cli.Describe(result));
            Assert.Equal(2, result.ExitCode);
            Assert.Contains(Path.Combine(directory, file), result.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Serve_with_several_bad_settings_lists_every_problem_and_exits_non_zero()
    {
        var directory = Directory.CreateTempSubdirectory("tunnel-cli-").FullName;
        try
        {
            var config = Path.Combine(directory, "edge.json");
            await File.WriteAllTextAsync(config, """
                { "Edge": {
                    "Limits": { "MaxRequestHeaderCount": 0 },
                    "Hosts": { "app.example.com": { "Allow": [ "10.0.0.1/8" ], "RateLimit": { "PermitsPerSecond": 0 } } },
                    "HttpsRedirectHosts": [ "bad host" ],
                    "AdminAllowedNetworks": [ "not-a-network" ],
                    "Cluster": { "StoreEndpoints": [ "http://127.0.0.1:2379" ], "KeyPrefix": "tunnel", "LeaseTtl": "00:00:01" } } }
                """);

            // No --dir: the credential paths are missing too.
            var result = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--config", config, "--listen", "127.0.0.1", "--tunnel-port", "0", "--http-port", "0", "--admin-port", "0"], CommandTimeout);
            output.WriteLine(Cli.Describe(result));

            Assert.Equal(2, result.ExitCode);
            string[] problems =
            [
                "The edge needs CaCertificatePath, ServerCertificatePath and ServerKeyPath",
                "Limits:MaxRequestHeaderCount is 0; it must be at least 1.",
                "Hosts:app.example.com:Allow: '10.0.0.1/8' is not an IP address or CIDR range",
                "Hosts:app.example.com:RateLimit:PermitsPerSecond is 0; it must be more than 0.",
                "HttpsRedirectHosts: ",
                "AdminAllowedNetworks: 'not-a-network' is not a network",
                "Edge:Cluster:KeyPrefix must end with '/'; 'tunnel' does not.",
                "Edge:Cluster:LeaseTtl must be at least 2 s",
            ];
            Assert.All(problems, problem => Assert.Contains(" - " + problem, result.Stderr, StringComparison.Ordinal));
            Assert.Equal(problems.Length, result.Stderr.Split('\n').Count(line => line.StartsWith(" - ", StringComparison.Ordinal)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private async Task<string> RunAsync(params string[] arguments)
    {
        var result = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), .. arguments], CommandTimeout);
        Assert.True(result.ExitCode == 0, $"tunnel-edge {string.Join(' ', arguments)}: {Cli.Describe(result)}");
        return result.Stdout;
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting until {what}.");
            await Task.Delay(200);
        }
    }

    /// <summary>HelloOrigin in this process with the credential's certificate and pinned CA, dialing one edge.</summary>
    private static async Task<(WebApplication App, LogCapture Logs)> StartOriginAsync(TunnelCredential credential, int tunnelPort, string directory)
    {
        var prefix = Path.Combine(directory, "origin-" + Guid.NewGuid().ToString("N")[..8]);
        using (var certificate = credential.CreateCertificate())
        {
            CertificateIssuer.WritePem(certificate, prefix + ".pem", prefix + ".key");
        }

        await File.WriteAllTextAsync(prefix + "-edge-ca.pem", credential.EdgeCa);
        var logs = new LogCapture();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.WebHost.UseTunnelTransport(tunnel =>
        {
            tunnel.Edges = [$"127.0.0.1:{tunnelPort}"];
            tunnel.Hostnames = [.. credential.Hostnames];
            tunnel.CertificatePath = prefix + ".pem";
            tunnel.CertificateKeyPath = prefix + ".key";
            tunnel.EdgeCaPath = prefix + "-edge-ca.pem";
            tunnel.EdgeServerName = credential.EdgeServerName;
        });
        var app = builder.Build();
        app.MapHelloEndpoints();
        await app.StartAsync();
        return (app, logs);
    }
}
