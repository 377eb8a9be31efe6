using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access.SignIn;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Access;

/// <summary>
/// The identity assertion across a cluster hop: two <c>tunnel-edge</c> processes joined through etcd, a
/// route with service-token access on both, the app (<c>AddTunnelIdentity</c>) connected to edge A only, and
/// curl at edge B, which forwards to A. The app's <c>/me</c> shows <c>HttpContext.User</c>.
/// </summary>
public class ClusterIdentityTests(ITestOutputHelper output)
{
    private const string Host = TunnelHarness.Hostname;
    private const string OpenHost = SignInSite.OpenHostname;
    private const string TokenClientId = "ci";

    [Fact]
    public async Task A_service_token_at_the_edge_without_the_app_reaches_it_through_the_hop_with_the_identity()
    {
        await using var world = await World.StartAsync(output);

        foreach (var (edge, name) in new[] { (world.B, "edge-b"), (world.A, "edge-a") })
        {
            var me = await world.CurlAsync(edge, Host, "/me", world.Token);
            Assert.True(me.EndsWith("\n200", StringComparison.Ordinal), $"at {name}: {me}");
            Assert.Contains("<p id=\"sub\">service:ci</p>", me, StringComparison.Ordinal);
            Assert.Contains("<p id=\"name\">ci</p>", me, StringComparison.Ordinal);

            // The app got the assertion of the edge the visitor reached: B's crossed the hop to A unchanged.
            var assertion = Identity(await world.CurlAsync(edge, Host, "/headers", world.Token, status: false));
            Assert.Equal(name, Payload(assertion)["iss"]!.GetValue<string>());
        }

        Assert.DoesNotContain(world.OriginLogs.Entries, e => e.EventId.Id == 90);
    }

    [Fact]
    public async Task A_visitor_signs_in_with_the_browser_at_the_edge_without_the_app_and_the_session_holds_at_the_other_edge()
    {
        await using var world = await World.StartAsync(output, signIn: true);
        await using var browser = await SignInTests.StartBrowserAsync();

        // Over the visitors' plain HTTP port: the sign-in's cookies are Lax and Secure only on HTTPS.
        await using var page = await browser.OpenAsync($"http://{Host}:{world.B.VisitorPort}/me");
        await SignInTests.SignInAsync(page, "alice");
        await page.WaitUntilAsync("document.getElementById('email') !== null", TimeSpan.FromSeconds(30), "the app's page shows the visitor signed in at B");
        Assert.Equal("alice@example.com", await SignInTests.TextAsync(page, "email"));
        Assert.Equal("user-alice", await SignInTests.TextAsync(page, "sub"));

        // Cookies do not tell ports apart: B's session cookie goes to A, which reads it with the shared access-keys/.
        await page.EvaluateAsync($"location.href = 'http://{Host}:{world.A.VisitorPort}/me'");
        await page.WaitUntilAsync($"location.port === '{world.A.VisitorPort}' && document.getElementById('email') !== null", TimeSpan.FromSeconds(30), "the app's page shows the visitor at A");
        Assert.Equal("alice@example.com", await SignInTests.TextAsync(page, "email"));
        Assert.Equal(1, world.Provider!.LoginFormsShown);
        Assert.DoesNotContain(world.OriginLogs.Entries, e => e.EventId.Id == 90);
    }

    [Fact]
    public async Task A_forged_or_replayed_assertion_sent_by_a_visitor_at_the_other_edge_never_authenticates()
    {
        await using var world = await World.StartAsync(output);

        // A real assertion for Host, as the app got it: what an attacker who captured one holds.
        var captured = Identity(await world.CurlAsync(world.A, Host, "/headers", world.Token, status: false));
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var forgedFor = (string audience) => Forge(otherKey, new JsonObject
        {
            ["iss"] = "edge-a",
            ["aud"] = audience,
            ["sub"] = "user-admin",
            ["email"] = "admin@example.com",
            ["name"] = "admin",
            ["iat"] = now,
            ["nbf"] = now,
            ["exp"] = now + 60,
            ["jti"] = "forged",
        });

        foreach (var fake in new[] { captured, forgedFor(Host) })
        {
            // Without a token, at B, for the route with access: B refuses; nothing reaches A or the app.
            var refused = await world.CurlAsync(world.B, Host, "/me", ["-H", $"X-Tunnel-Identity: {fake}", "-H", "X-Tunnel-Edge-Hop: edge-b"]);
            Assert.EndsWith("\n403", refused, StringComparison.Ordinal);

            // With a token: the app gets B's own assertion, never the visitor's copy.
            var replaced = Identity(await world.CurlAsync(world.B, Host, "/headers", [.. world.Token, "-H", $"X-Tunnel-Identity: {fake}"], status: false));
            Assert.NotEqual(fake, replaced);
            Assert.Equal("edge-b", Payload(replaced)["iss"]!.GetValue<string>());
        }

        // To the route without access, through the hop, posing as a peer too: stripped, so the app authenticates nobody.
        foreach (var fake in new[] { captured, forgedFor(OpenHost) })
        {
            foreach (var pose in new[] { Array.Empty<string>(), ["-H", "X-Tunnel-Edge-Hop: edge-b"], ["-H", "X_Tunnel_Edge_Hop: edge-b"] })
            {
                string[] sent = [.. pose, "-H", $"X-Tunnel-Identity: {fake}", "-H", $"X_Tunnel_Identity: {fake}"];
                Assert.EndsWith("\n401", await world.CurlAsync(world.B, OpenHost, "/me", sent), StringComparison.Ordinal);
                var received = JsonNode.Parse(await world.CurlAsync(world.B, OpenHost, "/headers", sent, status: false))!["received"]!.AsObject();
                Assert.DoesNotContain(received, h => h.Key.Replace('_', '-').StartsWith("X-Tunnel-", StringComparison.OrdinalIgnoreCase));
            }
        }

        // The app never even saw a visitor's copy to refuse.
        Assert.DoesNotContain(world.OriginLogs.Entries, e => e.EventId.Id == 90);
    }

    [Fact]
    public async Task Edges_with_different_signing_keys_refuse_the_hop_and_say_the_keys_differ()
    {
        await using var world = await World.StartAsync(output, sharedKeys: false);

        // A's own visitors still get in.
        Assert.EndsWith("\n200", await world.CurlAsync(world.A, Host, "/me", world.Token), StringComparison.Ordinal);

        // B signs with a key the app never received: no identity rather than a wrong one, and A says why.
        var atB = await world.CurlAsync(world.B, Host, "/me", world.Token);
        output.WriteLine(atB);
        Assert.EndsWith("\n502", atB, StringComparison.Ordinal);
        Assert.DoesNotContain("service:ci", atB, StringComparison.Ordinal);
        Assert.DoesNotContain("access-signing", atB, StringComparison.Ordinal);
        await EdgeCluster.UntilAsync(() => Task.FromResult(world.A.Output.Contains("access-signing.key differ", StringComparison.Ordinal)), TimeSpan.FromSeconds(5), "edge A logs that the keys differ");
        var line = world.A.Output.Split('\n').First(l => l.Contains("access-signing.key differ", StringComparison.Ordinal));
        output.WriteLine(line);
        Assert.Contains("edge-b", line, StringComparison.Ordinal);
        Assert.DoesNotContain(world.TokenSecret, world.A.Output + world.B.Output, StringComparison.Ordinal);

        // Every visitor at B repeats it: each is refused and counted, and the log says it once per 10 s.
        for (var i = 0; i < 3; i++)
        {
            Assert.EndsWith("\n502", await world.CurlAsync(world.B, Host, "/me", world.Token), StringComparison.Ordinal);
        }

        Assert.Equal(4.0, EdgeCluster.Series(await EdgeCluster.MetricsAsync(world.A), "tunnel_edge_access_decisions_total", ("reason", "peer_key_differs")));
        Assert.Single(world.A.Output.Split('\n'), l => l.Contains("access-signing.key differ", StringComparison.Ordinal));
        Assert.DoesNotContain(world.OriginLogs.Entries, e => e.EventId.Id == 90);
    }

    [Fact]
    public async Task A_route_with_access_at_one_edge_only_is_refused_through_the_hop_not_served_anonymously()
    {
        await using var world = await World.StartAsync(output, accessAtB: false);

        // B has no Access section for Host, so it lets the visitor through unchecked; A, which has one, must not serve that.
        Assert.EndsWith("\n403", await world.CurlAsync(world.A, Host, "/", []), StringComparison.Ordinal);
        var atB = await world.CurlAsync(world.B, Host, "/", []);
        output.WriteLine(atB);
        Assert.EndsWith("\n502", atB, StringComparison.Ordinal);
        await EdgeCluster.UntilAsync(() => Task.FromResult(world.A.Output.Contains("Access configuration differs", StringComparison.Ordinal)), TimeSpan.FromSeconds(5), "edge A logs that the configurations differ");
        Assert.Equal(1.0, EdgeCluster.Series(await EdgeCluster.MetricsAsync(world.A), "tunnel_edge_access_decisions_total", ("reason", "peer_no_assertion")));
    }

    /// <summary>The assertion the app received, from its <c>/headers</c> answer.</summary>
    private static string Identity(string headersJson) =>
        JsonNode.Parse(headersJson)!["received"]!.AsObject().Single(h => h.Key.Equals("X-Tunnel-Identity", StringComparison.OrdinalIgnoreCase)).Value!.GetValue<string>();

    private static JsonObject Payload(string assertion) =>
        JsonNode.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(assertion.Split('.')[1]))!.AsObject();

    /// <summary>A well-formed ES256 assertion signed with <paramref name="key"/>.</summary>
    private static string Forge(ECDsa key, JsonObject payload)
    {
        var input = Base64Url(Encoding.UTF8.GetBytes("""{"alg":"ES256","typ":"JWT","kid":"forged"}""")) + "." + Base64Url(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        return input + "." + Base64Url(key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The cluster, its two edges, and the app connected to A only, serving <see cref="Host"/> (service tokens) and <see cref="OpenHost"/> (no access).</summary>
    private sealed class World : IAsyncDisposable
    {
        private readonly EdgeCluster _cluster;
        private readonly WriteOnDispose _dump;

        private World(EdgeCluster cluster, WriteOnDispose dump, EdgeProcess a, EdgeProcess b, LogCapture originLogs, string tokenSecret, OidcProvider? provider)
        {
            Provider = provider;
            _cluster = cluster;
            _dump = dump;
            A = a;
            B = b;
            OriginLogs = originLogs;
            TokenSecret = tokenSecret;
        }

        public EdgeProcess A { get; }

        public EdgeProcess B { get; }

        public LogCapture OriginLogs { get; }

        /// <summary>The OpenID Connect provider, with <c>signIn</c>; its client's callback is at B.</summary>
        public OidcProvider? Provider { get; }

        public string TokenSecret { get; }

        /// <summary>curl's two service-token headers.</summary>
        public string[] Token => ["-H", $"{SignInServices.ClientIdHeader}: {TokenClientId}", "-H", $"{SignInServices.ClientSecretHeader}: {TokenSecret}"];

        /// <param name="sharedKeys">Whether B shares A's directory, and so its <c>access-signing.key</c> and <c>access-keys/</c>.</param>
        /// <param name="accessAtB">Whether B's configuration has the <c>Access</c> section for <see cref="Host"/>.</param>
        /// <param name="signIn">Whether the section has sign-in with the OpenIddict provider too (alice allowed), besides the service token.</param>
        public static async Task<World> StartAsync(ITestOutputHelper output, bool sharedKeys = true, bool accessAtB = true, bool signIn = false)
        {
            var cluster = await EdgeCluster.StartAsync();
            var dump = new WriteOnDispose(output, () => cluster.Output);
            var tokenSecret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            var access = new JsonObject
            {
                ["ServiceTokens"] = new JsonArray(new JsonObject { ["ClientId"] = TokenClientId, ["SecretSha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(tokenSecret))) }),
            };
            var provider = signIn ? await OidcProvider.StartAsync(cluster.Pki, new LogCapture()) : null;
            if (provider is not null)
            {
                var secretPath = Path.Combine(cluster.Pki.Directory, "client-secret");
                TestPki.WriteSecret(secretPath, provider.ClientSecret + "\n");
                access["Authority"] = provider.Authority;
                access["ClientId"] = OidcProvider.ClientId;
                access["ClientSecretPath"] = secretPath;
                access["AuthorityCaPath"] = cluster.Pki.CaPath;
                access["AllowedEmails"] = new JsonArray("alice@example.com");
            }

            var withAccess = Path.Combine(cluster.Pki.Directory, "access.json");
            await File.WriteAllTextAsync(withAccess, new JsonObject { ["Edge"] = new JsonObject { ["Hosts"] = new JsonObject { [Host] = new JsonObject { ["Access"] = access } } } }.ToJsonString());
            var without = Path.Combine(cluster.Pki.Directory, "no-access.json");
            await File.WriteAllTextAsync(without, """{ "Edge": { } }""");

            var a = await cluster.StartEdgeAsync("edge-a", "r1", configPath: withAccess);
            var b = await cluster.StartEdgeAsync("edge-b", "r2", configPath: accessAtB ? withAccess : without, directory: sharedKeys ? null : OwnDirectory(cluster.Pki, "b"));
            if (provider is not null)
            {
                await provider.RegisterClientAsync($"http://{Host}:{b.VisitorPort}{SignInServices.CallbackPath}");
            }

            var logs = new LogCapture();
            var (certificate, key) = cluster.Pki.IssueOrigin(Host, OpenHost);
            await cluster.StartOriginAsync(Host, [a],
                configureTunnel: t => (t.Hostnames, t.CertificatePath, t.CertificateKeyPath) = ([Host, OpenHost], certificate, key),
                configureBuilder: builder =>
                {
                    builder.Logging.AddProvider(logs);
                    builder.Services.AddAuthentication().AddTunnelIdentity();
                    builder.Services.AddAuthorization();
                },
                configureApp: SignInSite.MapMe);
            var world = new World(cluster, dump, a, b, logs, tokenSecret, provider);
            foreach (var edge in new[] { a, b })
            {
                await EdgeCluster.UntilAsync(async () => (await world.CurlAsync(edge, OpenHost, "/", [])).EndsWith("\n200", StringComparison.Ordinal),
                    TimeSpan.FromSeconds(20), "the edge serves the app");
            }

            return world;
        }

        /// <summary>curl at <paramref name="edge"/>'s visitor port for <paramref name="host"/>; the body, then (with <paramref name="status"/>) a line with the status.</summary>
        public async Task<string> CurlAsync(EdgeProcess edge, string host, string path, string[] arguments, bool status = true)
        {
            var result = await Cli.RunAsync("curl", ["-s", "--max-time", "10", "--resolve", $"{host}:{edge.VisitorPort}:127.0.0.1", .. arguments,
                .. status ? (string[])["-w", "\n%{http_code}"] : [], $"http://{host}:{edge.VisitorPort}{path}"], TimeSpan.FromSeconds(15));
            Assert.True(result.ExitCode == 0, Cli.Describe(result));
            return result.Stdout;
        }

        public async ValueTask DisposeAsync()
        {
            _dump.Dispose();
            await _cluster.DisposeAsync();
            if (Provider is not null)
            {
                await Provider.DisposeAsync();
            }

        }

        /// <summary>A directory of B's own with the edge CA and certificate, so B makes its own <c>access-signing.key</c>.</summary>
        private static string OwnDirectory(TestPki pki, string name)
        {
            var directory = Directory.CreateDirectory(Path.Combine(pki.Directory, "edge-" + name)).FullName;
            foreach (var file in new[] { "ca.pem", "ca.key", "edge.pem", "edge.key" })
            {
                File.Copy(Path.Combine(pki.Directory, file), Path.Combine(directory, file));
            }

            return directory;
        }
    }
}
