using System.Net;
using System.Text.Json.Nodes;
using Tunnel.Edge.Access.SignIn;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Access;

/// <summary>
/// Sign-in at the edge with a real OpenID Connect provider (OpenIddict, in-process), the edge's real
/// OpenID Connect handler, headless Chromium and curl; the app reads the visitor from <c>HttpContext.User</c>.
/// </summary>
public class SignInTests(ITestOutputHelper output)
{
    private static readonly TimeSpan PageTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_visitor_signs_in_through_the_providers_form_and_the_app_shows_their_email()
    {
        await using var site = await SignInSite.StartAsync();
        await using var browser = await StartBrowserAsync();
        await using var page = await browser.OpenAsync(site.Url("/me"));

        await SignInAsync(page, "alice");
        await page.WaitUntilAsync("document.getElementById('email') !== null", PageTimeout, "the app's page shows the signed-in visitor");
        Assert.Equal("alice@example.com", await TextAsync(page, "email"));
        Assert.Equal("Alice", await TextAsync(page, "name"));
        Assert.Equal("user-alice", await TextAsync(page, "sub"));
        Assert.Equal("True", await TextAsync(page, "staff"));
        Assert.Equal(1, site.Provider.LoginFormsShown);
        await ScreenshotAsync(page, "signin-app.png");

        // The session cookie is HttpOnly: the page's scripts cannot read it.
        Assert.DoesNotContain("tunnel-session", (await page.EvaluateAsync("document.cookie"))!.GetValue<string>(), StringComparison.Ordinal);

        // Signing out ends the edge's session: the next visit goes to the provider's form again.
        await page.EvaluateAsync($"location.href = '{SignInServices.SignOutPath}'");
        await page.WaitUntilAsync("document.title === 'Signed out'", PageTimeout, "the edge's signed-out page shows");
        await page.EvaluateAsync("location.href = '/me'");
        await page.WaitUntilAsync("document.getElementById('username') !== null", PageTimeout, "the provider's login form shows again");
        Assert.Equal(2, site.Provider.LoginFormsShown);
    }

    [Fact]
    public async Task A_signed_in_visitor_outside_the_policy_gets_the_edges_403_page_naming_nothing_of_the_policy()
    {
        await using var site = await SignInSite.StartAsync();
        await using var browser = await StartBrowserAsync();
        await using var page = await browser.OpenAsync(site.Url("/me"));

        await SignInAsync(page, "mallory");
        await page.WaitUntilAsync("document.title.startsWith('403')", PageTimeout, "the edge's 403 page shows");
        var html = (await page.EvaluateAsync("document.documentElement.outerHTML"))!.GetValue<string>();
        output.WriteLine(html);
        Assert.Contains("may not visit hello.test", html, StringComparison.Ordinal);
        await ScreenshotAsync(page, "signin-403.png");
        foreach (var secret in (string[])["alice@example.com", "partner.test", "ops", "mallory", site.Provider.Authority, OidcProvider.ClientId])
        {
            Assert.DoesNotContain(secret, html, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Contains(site.Harness.EdgeLogs.Entries, e => e.EventId.Id == 452 && e.Message.Contains("user-mallory", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_visitor_allowed_by_group_or_domain_gets_in_and_an_expired_session_goes_back_to_sign_in()
    {
        var lifetime = TimeSpan.FromSeconds(3);
        await using var site = await SignInSite.StartAsync(sessionLifetime: lifetime);
        await using var browser = await StartBrowserAsync();
        await using var page = await browser.OpenAsync(site.Url("/me"));

        // bob is allowed by his e-mail domain and by his group.
        await SignInAsync(page, "bob");
        await page.WaitUntilAsync("document.getElementById('email') !== null", PageTimeout, "the app's page shows bob");
        var signedIn = DateTime.UtcNow;
        Assert.Equal("bob@partner.test", await TextAsync(page, "email"));

        // Within the lifetime the session holds: no second form.
        await page.EvaluateAsync("location.reload()");
        await page.WaitUntilAsync("document.getElementById('email') !== null", PageTimeout, "the app's page shows bob again");
        Assert.Equal(1, site.Provider.LoginFormsShown);

        var wait = signedIn + lifetime + TimeSpan.FromSeconds(1) - DateTime.UtcNow;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait);
        }

        await page.EvaluateAsync("location.reload()");
        await page.WaitUntilAsync("document.getElementById('username') !== null", PageTimeout, "the expired session sends the visitor to the provider's form");
        Assert.Equal(2, site.Provider.LoginFormsShown);
    }

    [Fact]
    public async Task The_session_cookie_is_host_only_httponly_secure_and_lax_and_carries_no_readable_claims()
    {
        await using var site = await SignInSite.StartAsync();
        var cookies = new CookieContainer();
        using var client = NoRedirectClient(site, cookies);

        var challenge = await client.GetAsync(site.Url("/me"));
        Assert.Equal(HttpStatusCode.Redirect, challenge.StatusCode);
        var authorize = challenge.Headers.Location!;
        Assert.StartsWith(site.Provider.Authority, authorize.ToString(), StringComparison.Ordinal);
        Assert.Contains("code_challenge_method=S256", authorize.Query, StringComparison.Ordinal);
        Assert.Contains("response_type=code", authorize.Query, StringComparison.Ordinal);

        var code = await client.GetAsync(authorize + "&username=alice");
        Assert.Equal(HttpStatusCode.Redirect, code.StatusCode);
        var callback = code.Headers.Location!;
        Assert.Equal($"https://{TunnelHarness.Hostname}:{site.HttpsPort}{SignInServices.CallbackPath}", callback.GetLeftPart(UriPartial.Path));

        var signedIn = await client.GetAsync(callback);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal("/me", signedIn.Headers.Location!.ToString());
        var session = Assert.Single(signedIn.Headers.GetValues("Set-Cookie"), c => c.StartsWith("tunnel-session=", StringComparison.Ordinal));
        output.WriteLine(session);
        var attributes = session.Split(';', StringSplitOptions.TrimEntries).Skip(1).Select(a => a.ToLowerInvariant()).ToArray();
        Assert.Contains("httponly", attributes);
        Assert.Contains("secure", attributes);
        Assert.Contains("samesite=lax", attributes);
        Assert.Contains("path=/", attributes);
        Assert.DoesNotContain(attributes, a => a.StartsWith("domain", StringComparison.Ordinal));
        Assert.DoesNotContain("alice", Uri.UnescapeDataString(session), StringComparison.OrdinalIgnoreCase);

        var me = await client.GetStringAsync(site.Url("/me"));
        Assert.Contains("alice@example.com", me, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_service_token_works_for_curl_and_stops_after_revocation()
    {
        await using var site = await SignInSite.StartAsync();
        string[] token = ["-H", $"{SignInServices.ClientIdHeader}: {SignInSite.TokenClientId}", "-H", $"{SignInServices.ClientSecretHeader}: {site.TokenSecret}"];

        var me = await Cli.RunAsync("curl", [.. site.Curl(), .. token, "-w", "\n%{http_code}", site.Url("/me")], TimeSpan.FromSeconds(15));
        Assert.EndsWith("\n200", me.Stdout, StringComparison.Ordinal);
        Assert.Contains("<p id=\"sub\">service:ci</p>", me.Stdout, StringComparison.Ordinal);
        Assert.Contains("<p id=\"name\">ci</p>", me.Stdout, StringComparison.Ordinal);

        // The token's headers never reach the app; the edge's assertion does.
        var headers = await Cli.RunAsync("curl", [.. site.Curl(), .. token, site.Url("/headers")], TimeSpan.FromSeconds(15));
        var received = JsonNode.Parse(headers.Stdout)!["received"]!.AsObject();
        Assert.DoesNotContain(received, h => h.Key.StartsWith("Tunnel-Access-", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(received, h => h.Key.Equals("X-Tunnel-Identity", StringComparison.OrdinalIgnoreCase));

        var wrong = await Cli.RunAsync("curl", [.. site.Curl(), "-H", $"{SignInServices.ClientIdHeader}: ci", "-H", $"{SignInServices.ClientSecretHeader}: {new string('0', 64)}", "-o", "/dev/null", "-w", "%{http_code}", site.Url("/me")], TimeSpan.FromSeconds(15));
        Assert.Equal("403", wrong.Stdout);

        // Revoked with the CLI, which calls the running edge's admin API.
        var revoke = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "revoke-service-token", SignInSite.TokenClientId,
            "--admin", $"http://127.0.0.1:{site.Harness.Edge.AdminEndPoint!.Port}", "--token-file", site.Harness.Edge.Options.AdminTokenPath!], TimeSpan.FromSeconds(30));
        Assert.True(revoke.ExitCode == 0, Cli.Describe(revoke));
        Assert.Contains("Revoked service token ci on hello.test.", revoke.Stdout, StringComparison.Ordinal);
        var after = await Cli.RunAsync("curl", [.. site.Curl(), .. token, "-w", "\n%{http_code}", site.Url("/me")], TimeSpan.FromSeconds(15));
        Assert.EndsWith("\n403", after.Stdout, StringComparison.Ordinal);
        Assert.Contains("The service token is not valid for hello.test.", after.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(site.TokenSecret, string.Join("\n", site.Harness.EdgeLogs.Entries.Select(e => e.Message)), StringComparison.Ordinal);

        var listed = await site.AdminGetAsync("/api/v1/access/service-tokens");
        Assert.Contains("\"revoked\": true", listed, StringComparison.Ordinal);
        Assert.DoesNotContain(site.TokenSecret, listed, StringComparison.Ordinal);

        // The revocation is on disk, so it outlives a restart.
        Assert.Contains("\"clientId\": \"ci\"", await File.ReadAllTextAsync(Path.Combine(site.Harness.Pki.Directory, ServiceTokenRevocations.FileName)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_forged_or_replayed_assertion_sent_by_a_visitor_never_authenticates()
    {
        await using var site = await SignInSite.StartAsync();
        string[] token = ["-H", $"{SignInServices.ClientIdHeader}: {SignInSite.TokenClientId}", "-H", $"{SignInServices.ClientSecretHeader}: {site.TokenSecret}"];

        // A real assertion, as the app got it through the tunnel: what an attacker who captured one holds.
        var headers = await Cli.RunAsync("curl", [.. site.Curl(), .. token, site.Url("/headers")], TimeSpan.FromSeconds(15));
        var captured = Identity(headers.Stdout);
        Assert.Equal(3, captured.Split('.').Length);

        // Sent through the edge to a route without sign-in: stripped, so the app authenticates nobody.
        var open = await Cli.RunAsync("curl", [.. site.Curl(SignInSite.OpenHostname), "-H", $"X-Tunnel-Identity: {captured}", "-H", $"X_Tunnel_Identity: {captured}", "-o", "/dev/null", "-w", "%{http_code}", site.Url("/me", SignInSite.OpenHostname)], TimeSpan.FromSeconds(15));
        Assert.Equal("401", open.Stdout);
        var openHeaders = await Cli.RunAsync("curl", [.. site.Curl(SignInSite.OpenHostname), "-H", $"X-Tunnel-Identity: {captured}", site.Url("/headers", SignInSite.OpenHostname)], TimeSpan.FromSeconds(15));
        Assert.DoesNotContain(JsonNode.Parse(openHeaders.Stdout)!["received"]!.AsObject(), h => h.Key.Replace('_', '-').Equals("X-Tunnel-Identity", StringComparison.OrdinalIgnoreCase));

        // Sent through the edge to the route with sign-in, without a session: the edge sends the visitor to sign in.
        var signIn = await Cli.RunAsync("curl", [.. site.Curl(), "-H", $"X-Tunnel-Identity: {captured}", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", site.Url("/me")], TimeSpan.FromSeconds(15));
        Assert.StartsWith("302 " + site.Provider.Authority, signIn.Stdout, StringComparison.Ordinal);

        // Sent with a service token: the app gets the edge's own assertion, not the visitor's copy.
        var replaced = await Cli.RunAsync("curl", [.. site.Curl(), .. token, "-H", $"X-Tunnel-Identity: {captured}", site.Url("/headers")], TimeSpan.FromSeconds(15));
        Assert.NotEqual(captured, Identity(replaced.Stdout));

        // Replayed straight to the app's own listener, within its lifetime and for the right host: not a tunnel connection, so nobody.
        using var direct = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, site.DirectUrl("/me"));
        request.Headers.Host = TunnelHarness.Hostname;
        request.Headers.TryAddWithoutValidation("X-Tunnel-Identity", captured);
        using var response = await direct.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains(site.Origin.Logs.Entries, e => e.EventId.Id == 91);
    }

    /// <summary>The assertion the app received, from its <c>/headers</c> answer (HTTP/2 names are lower case).</summary>
    private static string Identity(string headersJson) =>
        JsonNode.Parse(headersJson)!["received"]!.AsObject().Single(h => h.Key.Equals("X-Tunnel-Identity", StringComparison.OrdinalIgnoreCase)).Value!.GetValue<string>();

    internal static Task<HeadlessBrowser> StartBrowserAsync() =>
        // The test CA is unknown to the browser: skip that check only.
        HeadlessBrowser.StartAsync($"--host-resolver-rules=MAP {TunnelHarness.Hostname} 127.0.0.1", "--ignore-certificate-errors");

    /// <summary>Waits for the provider's form, types the user's name and sends it.</summary>
    internal static async Task SignInAsync(HeadlessBrowser.Page page, string user)
    {
        await page.WaitUntilAsync("document.getElementById('username') !== null", PageTimeout, "the provider's login form shows");
        await page.EvaluateAsync($"document.getElementById('username').value = '{user}'; document.getElementById('login').submit(); true");
    }

    private static async Task ScreenshotAsync(HeadlessBrowser.Page page, string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "artifacts", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await page.ScreenshotAsync(path);
    }

    internal static async Task<string> TextAsync(HeadlessBrowser.Page page, string id) =>
        (await page.EvaluateAsync($"document.getElementById('{id}').textContent"))!.GetValue<string>();

    /// <summary>An HttpClient that sends the test hostnames to the edge and the provider's to itself, trusts the test CA, and follows no redirect.</summary>
    private static HttpClient NoRedirectClient(SignInSite site, CookieContainer cookies)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            CookieContainer = cookies,
            UseCookies = true,
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, context.DnsEndPoint.Port), cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
    }
}
