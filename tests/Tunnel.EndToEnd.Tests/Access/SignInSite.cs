using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Access;
using Tunnel.Edge.Access.SignIn;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;

namespace Tunnel.EndToEnd.Tests.Access;

/// <summary>
/// The sign-in tests' world: the OpenIddict provider, an edge with HTTPS and sign-in on
/// <see cref="TunnelHarness.Hostname"/> (alice's address, the <c>partner.test</c> domain and the <c>ops</c>
/// group are allowed; a service token <c>ci</c>), and a HelloOrigin app with <c>AddTunnelIdentity</c>
/// and an ordinary loopback listener besides its tunnel. Its <c>/me</c> page shows <c>HttpContext.User</c>.
/// </summary>
internal sealed class SignInSite : IAsyncDisposable
{
    public const string TokenClientId = "ci";

    /// <summary>A second hostname on the same edge and app, without sign-in.</summary>
    public const string OpenHostname = "open.test";

    private readonly TestPki _sitePki;

    private SignInSite(TestPki sitePki, OidcProvider provider, TunnelHarness harness, TunnelHarness.Origin origin, string tokenSecret, string adminToken)
    {
        _sitePki = sitePki;
        Provider = provider;
        Harness = harness;
        Origin = origin;
        TokenSecret = tokenSecret;
        AdminToken = adminToken;
    }

    public OidcProvider Provider { get; }

    public TunnelHarness Harness { get; }

    public TunnelHarness.Origin Origin { get; }

    public string TokenSecret { get; }

    public string AdminToken { get; }

    public int HttpsPort => Harness.Edge.VisitorHttpsEndPoint!.Port;

    public string Url(string path, string host = TunnelHarness.Hostname) => $"https://{host}:{HttpsPort}{path}";

    /// <summary>The app's own loopback listener, which is not a tunnel connection.</summary>
    public Uri DirectUrl(string path) => new(Origin.App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
        .Select(a => Uri.TryCreate(a, UriKind.Absolute, out var u) ? u : null).Single(u => u is { Scheme: "http", Host: "127.0.0.1", Port: > 0 })!.GetLeftPart(UriPartial.Authority) + path);

    /// <summary>curl arguments that send <paramref name="host"/> to the edge's HTTPS port.</summary>
    public string[] Curl(string host = TunnelHarness.Hostname) => ["-sk", "--max-time", "10", "--resolve", $"{host}:{HttpsPort}:127.0.0.1"];

    public static async Task<SignInSite> StartAsync(TimeSpan? sessionLifetime = null)
    {
        var sitePki = new TestPki();
        var logs = new LogCapture();
        var provider = await OidcProvider.StartAsync(sitePki, logs);
        using var site = CertificateIssuer.IssueSiteCertificate(sitePki.Ca, [TunnelHarness.Hostname, OpenHostname], TimeSpan.FromDays(1));
        var certificate = Path.Combine(sitePki.Directory, "site.pem");
        var key = Path.Combine(sitePki.Directory, "site.key");
        CertificateIssuer.WritePem(site, certificate, key);
        var secretPath = Path.Combine(sitePki.Directory, "client-secret");
        TestPki.WriteSecret(secretPath, provider.ClientSecret + "\n");
        var tokenSecret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var adminToken = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [new VisitorCertificateFile { CertificatePath = certificate, KeyPath = key }];
            o.AdminTokenPath = Path.Combine(sitePki.Directory, "admin.token");
            TestPki.WriteSecret(o.AdminTokenPath, adminToken + "\n");
            o.Hosts[TunnelHarness.Hostname] = new EdgeHostOptions
            {
                Access = new EdgeHostAccessOptions
                {
                    Authority = provider.Authority,
                    ClientId = OidcProvider.ClientId,
                    ClientSecretPath = secretPath,
                    AuthorityCaPath = sitePki.CaPath,
                    AllowedEmails = ["alice@example.com"],
                    AllowedEmailDomains = ["partner.test"],
                    AllowedGroups = ["ops"],
                    SessionLifetime = sessionLifetime ?? TimeSpan.FromHours(8),
                    ServiceTokens = [new ServiceTokenOptions { ClientId = TokenClientId, SecretSha256 = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(tokenSecret))) }],
                },
            };
        });
        await provider.RegisterClientAsync($"https://{TunnelHarness.Hostname}:{harness.Edge.VisitorHttpsEndPoint!.Port}{SignInServices.CallbackPath}");
        var origin = await harness.StartOriginAsync(
            hostnames: [TunnelHarness.Hostname, OpenHostname],
            configureBuilder: builder =>
            {
                builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
                builder.Services.AddAuthentication().AddTunnelIdentity();
                builder.Services.AddAuthorization();
            },
            configureApp: MapMe);
        return new SignInSite(sitePki, provider, harness, origin, tokenSecret, adminToken);
    }

    /// <summary>Maps the app's <c>/me</c> page: <c>HttpContext.User</c>'s e-mail, name, sub and the <c>staff</c> role; signed-in visitors only.</summary>
    public static void MapMe(WebApplication app) => app.MapGet("/me", (HttpContext context) => Results.Content(
        $"<!doctype html><html><body><p id=\"email\">{WebUtility.HtmlEncode(context.User.FindFirst("email")?.Value)}</p>"
        + $"<p id=\"name\">{WebUtility.HtmlEncode(context.User.Identity?.Name)}</p><p id=\"sub\">{WebUtility.HtmlEncode(context.User.FindFirst("sub")?.Value)}</p>"
        + $"<p id=\"staff\">{context.User.IsInRole("staff")}</p></body></html>", "text/html; charset=utf-8")).RequireAuthorization();

    /// <summary>GETs a path of the edge's admin API; its JSON.</summary>
    public async Task<string> AdminGetAsync(string path)
    {
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Harness.Edge.AdminEndPoint!.Port}") };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        return await admin.GetStringAsync(path);
    }

    public async ValueTask DisposeAsync()
    {
        await Harness.DisposeAsync();
        await Provider.DisposeAsync();
        _sitePki.Dispose();
    }
}
