using System.Net;
using System.Security.Claims;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tunnel.EndToEnd.Tests.Access;

/// <summary>
/// A real OpenID Connect provider, OpenIddict's server in this process with an in-memory store, on
/// loopback HTTPS with a certificate of the test PKI: discovery, JWKS, the authorization endpoint
/// (authorization code with PKCE) and the token endpoint. Its login form asks for a user name only
/// and keeps no session, so every authorization request shows the form.
/// </summary>
public sealed class OidcProvider : IAsyncDisposable
{
    public const string ClientId = "tunnel-edge";

    /// <summary>The users it knows: name to e-mail address and groups.</summary>
    public static readonly IReadOnlyDictionary<string, (string Email, string[] Groups)> Users = new Dictionary<string, (string, string[])>
    {
        ["alice"] = ("alice@example.com", ["staff"]),
        ["bob"] = ("bob@partner.test", ["contractors", "ops"]),
        ["mallory"] = ("mallory@elsewhere.test", ["guests"]),
    };

    private readonly WebApplication _app;

    private int _loginForms;

    private OidcProvider(WebApplication app) => _app = app;

    /// <summary>The issuer, <c>https://127.0.0.1:{port}/</c>.</summary>
    public string Authority { get; private set; } = "";

    public string ClientSecret { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));

    /// <summary>How many authorization requests showed the login form.</summary>
    public int LoginFormsShown => Volatile.Read(ref _loginForms);

    public static async Task<OidcProvider> StartAsync(TestPki pki, LogCapture logs)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        var certificate = X509Certificate2.CreateFromPemFile(pki.EdgeCertificatePath, pki.EdgeKeyPath);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null))));
        var database = "oidc-" + Guid.NewGuid().ToString("N");
        builder.Services.AddDbContext<DbContext>(o => o.UseInMemoryDatabase(database).UseOpenIddict());
        builder.Services.AddOpenIddict()
            .AddCore(o => o.UseEntityFrameworkCore().UseDbContext<DbContext>())
            .AddServer(o =>
            {
                o.SetAuthorizationEndpointUris("connect/authorize").SetTokenEndpointUris("connect/token");
                o.AllowAuthorizationCodeFlow().RequireProofKeyForCodeExchange();
                o.AddEphemeralEncryptionKey().AddEphemeralSigningKey();
                o.RegisterScopes(Scopes.OpenId, Scopes.Email, Scopes.Profile);
                o.UseAspNetCore().EnableAuthorizationEndpointPassthrough();
            });
        var app = builder.Build();
        var provider = new OidcProvider(app);
        app.MapGet("/connect/authorize", provider.Authorize);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        provider.Authority = $"https://127.0.0.1:{new Uri(address).Port}/";
        return provider;
    }

    /// <summary>Registers the edge as a confidential client, with the callback URL on the edge's host.</summary>
    public async Task RegisterClientAsync(string redirectUri)
    {
        using var scope = _app.Services.CreateScope();
        var applications = scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>();
        await applications.CreateAsync(new OpenIddictApplicationDescriptor
        {
            ClientId = ClientId,
            ClientSecret = ClientSecret,
            ClientType = ClientTypes.Confidential,
            RedirectUris = { new Uri(redirectUri) },
            Permissions =
            {
                Permissions.Endpoints.Authorization, Permissions.Endpoints.Token,
                Permissions.GrantTypes.AuthorizationCode, Permissions.ResponseTypes.Code,
                Permissions.Scopes.Email, Permissions.Scopes.Profile,
            },
            Requirements = { Requirements.Features.ProofKeyForCodeExchange },
        });
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }

    private IResult Authorize(HttpContext context)
    {
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("Not an OpenID Connect request.");
        var user = context.Request.Query["username"].ToString();
        if (!Users.TryGetValue(user, out var profile))
        {
            Interlocked.Increment(ref _loginForms);
            return Results.Content(LoginForm(context.Request.Query), "text/html; charset=utf-8");
        }

        var identity = new ClaimsIdentity(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme, Claims.Name, Claims.Role);
        identity.AddClaim(new Claim(Claims.Subject, "user-" + user));
        identity.AddClaim(new Claim(Claims.Email, profile.Email));
        identity.AddClaim(new Claim(Claims.EmailVerified, "true", ClaimValueTypes.Boolean));
        identity.AddClaim(new Claim(Claims.Name, char.ToUpperInvariant(user[0]) + user[1..]));
        foreach (var group in profile.Groups)
        {
            identity.AddClaim(new Claim("groups", group));
        }

        identity.SetScopes(request.GetScopes());
        identity.SetDestinations(_ => [Destinations.IdentityToken, Destinations.AccessToken]);
        return Results.SignIn(new ClaimsPrincipal(identity), authenticationScheme: OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    /// <summary>The login form: the authorization request's parameters, hidden, and a user name; sent back with GET.</summary>
    private static string LoginForm(IQueryCollection query)
    {
        var hidden = string.Concat(query.Where(p => p.Key != "username").Select(p =>
            $"<input type=\"hidden\" name=\"{WebUtility.HtmlEncode(p.Key)}\" value=\"{WebUtility.HtmlEncode(p.Value.ToString())}\">"));
        return "<!doctype html><html><head><title>Sign in to the test provider</title></head><body><h1>Sign in</h1>"
            + $"<form id=\"login\" method=\"get\" action=\"/connect/authorize\">{hidden}<label>User <input id=\"username\" name=\"username\"></label> <button type=\"submit\">Sign in</button></form></body></html>";
    }
}
