using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Telemetry;
using Tunnel.Protocol;

namespace Tunnel.Edge.Access.SignIn;

/// <summary>Every route with an <c>Access</c> section, by its <c>Edge:Hosts</c> key, and what they share.</summary>
internal sealed class SignInRoutes(IReadOnlyDictionary<string, SignInRoute> routes, ServiceTokenRevocations revocations)
{
    public IEnumerable<SignInRoute> All => routes.Values;

    public ServiceTokenRevocations Revocations { get; } = revocations;

    /// <summary>The route of a host's policy (<see cref="HostPolicy.Name"/>), or <c>null</c> when it has no sign-in.</summary>
    public SignInRoute? Find(string policyName) => routes.TryGetValue(policyName, out var route) ? route : null;
}

/// <summary>
/// Sets up the sign-in: checks the <c>Access</c> sections at start, registers one cookie and one
/// OpenID Connect scheme per route, Data Protection with its keys in the edge's directory, the assertion
/// signer, and the middleware that runs after the access rules.
/// </summary>
internal static class SignInServices
{
    /// <summary>The provider sends the visitor back here, on the host they visit: register <c>https://{host}/.tunnel/signin-oidc</c>.</summary>
    public const string CallbackPath = "/.tunnel/signin-oidc";

    /// <summary>Ends the edge's session for the host.</summary>
    public const string SignOutPath = "/.tunnel/signout";

    /// <summary>Paths under this prefix belong to the edge on a route with sign-in; the app never sees them.</summary>
    public const string ReservedPrefix = "/.tunnel/";

    /// <summary>The service token headers; the edge strips them from every request it forwards.</summary>
    public const string ClientIdHeader = "Tunnel-Access-Client-Id";

    /// <inheritdoc cref="ClientIdHeader"/>
    public const string ClientSecretHeader = "Tunnel-Access-Client-Secret";

    private const string CookieName = "tunnel-session";

    /// <summary>Whether any host entry has an <c>Access</c> section.</summary>
    public static bool IsEnabled(EdgeOptions options) => (options.Hosts ?? []).Any(h => h.Value?.Access is not null);

    /// <summary>The directory of the edge's own keys: the one its server key is in (the edge directory with <c>serve --dir</c>).</summary>
    public static string KeyDirectory(EdgeOptions options) => Path.GetDirectoryName(Path.GetFullPath(options.ServerKeyPath!))!;

    /// <summary>Registers the sign-in's services when any host has an <c>Access</c> section.</summary>
    public static void Add(IServiceCollection services, EdgeOptions options)
    {
        if (!IsEnabled(options))
        {
            return;
        }

        var directory = KeyDirectory(options);
        var routes = new Dictionary<string, SignInRoute>(StringComparer.Ordinal);
        foreach (var (key, host) in options.Hosts)
        {
            if (host?.Access is { } access && HostnameRules.TryNormalize(key, out var name, out _))
            {
                routes[name] = new SignInRoute(name, access);
            }
        }

        services.AddSingleton(sp => new SignInRoutes(routes, new ServiceTokenRevocations(Path.Combine(directory, ServiceTokenRevocations.FileName), sp.GetRequiredService<TimeProvider>())));
        services.AddSingleton(sp => EdgeAssertionSigner.LoadOrCreate(Path.Combine(directory, EdgeAssertionSigner.KeyFile), options.Name, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<SignInMetrics>();

        // Session cookies and the sign-in's correlation cookies are encrypted with these keys; the
        // directory is owner-only, as the edge's other keys are.
        var keys = Directory.CreateDirectory(Path.Combine(directory, "access-keys"));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keys.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        services.AddDataProtection().SetApplicationName("tunnel-edge").PersistKeysToFileSystem(keys);
        var authentication = services.AddAuthentication();
        foreach (var route in routes.Values)
        {
            authentication.AddCookie(route.CookieScheme, cookie => ConfigureCookie(cookie, route));
            if (route.HasSignIn)
            {
                // Read now, so an unreadable file stops the start with its name rather than fail a visitor's request.
                var secret = route.Options.ClientSecretPath is { } secretPath ? Identity.SecureFile.Read(secretPath, "OpenID Connect client secret").Trim() : null;
                authentication.AddOpenIdConnect(route.OidcScheme, oidc => ConfigureOidc(oidc, route, secret));
            }
        }
    }

    /// <summary>Puts the sign-in after the access rules and the HTTPS redirect, when any host has it.</summary>
    public static void Use(WebApplication app)
    {
        if (app.Services.GetService<SignInRoutes>() is { } routes)
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Access.SignIn");
            foreach (var route in routes.All)
            {
                SignInLog.Configured(logger, route.Name, route.Options.Authority ?? "(none: service tokens only)", route.Options.ClientId ?? "", CallbackPath, route.Options.ServiceTokens.Count, route.Options.SessionLifetime.TotalMinutes);
            }

            app.UseMiddleware<SignInMiddleware>();
        }
    }

    private static void ConfigureCookie(CookieAuthenticationOptions cookie, SignInRoute route)
    {
        cookie.Cookie.Name = CookieName;
        cookie.Cookie.HttpOnly = true;
        cookie.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        cookie.Cookie.SameSite = SameSiteMode.Lax;
        cookie.Cookie.Path = "/";
        cookie.Cookie.Domain = null;
        cookie.ExpireTimeSpan = route.Options.SessionLifetime;
        cookie.SlidingExpiration = false;
    }

    private static void ConfigureOidc(OpenIdConnectOptions oidc, SignInRoute route, string? clientSecret)
    {
        var access = route.Options;
        oidc.SignInScheme = route.CookieScheme;
        oidc.Authority = access.Authority;
        oidc.ClientId = access.ClientId;
        oidc.ClientSecret = clientSecret;
        oidc.ResponseType = "code";
        oidc.UsePkce = true;

        // The provider redirects back with a GET: a Lax cookie goes with it, so the correlation and nonce
        // cookies need not be SameSite=None (which would need HTTPS).
        oidc.ResponseMode = "query";
        oidc.CallbackPath = CallbackPath;
        oidc.SignedOutCallbackPath = ReservedPrefix + "signout-callback";
        oidc.RemoteSignOutPath = ReservedPrefix + "signout-remote";
        oidc.Scope.Clear();
        foreach (var scope in (access.Scopes ?? ["openid", "profile", "email"]).Append("openid").Distinct(StringComparer.Ordinal))
        {
            oidc.Scope.Add(scope);
        }

        oidc.MapInboundClaims = false;
        oidc.GetClaimsFromUserInfoEndpoint = false;
        oidc.SaveTokens = false;
        oidc.UseTokenLifetime = false;
        oidc.TokenValidationParameters.NameClaimType = SignInClaims.Name;
        foreach (var cookie in new[] { oidc.CorrelationCookie, oidc.NonceCookie })
        {
            cookie.SameSite = SameSiteMode.Lax;
            cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        }

        if (access.AuthorityCaPath is { } caPath)
        {
            oidc.BackchannelHttpHandler = TrustingHandler(caPath);
        }

        oidc.Events.OnTokenValidated = context =>
        {
            context.Principal = route.Reduce(context.Principal!);
            var logger = context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Access.SignIn");
            SignInLog.SignedIn(logger, context.Request.Host.Host, context.Principal.FindFirst(SignInClaims.Subject)?.Value ?? "(no sub)");
            return Task.CompletedTask;
        };
        oidc.Events.OnRemoteFailure = context =>
        {
            context.HandleResponse();
            return SignInMiddleware.CallbackFailedAsync(context.HttpContext, route, context.Failure?.Message ?? "unknown failure");
        };
    }

    /// <summary>The back channel to the provider: the system's trust store, and the CA bundle of <c>AuthorityCaPath</c> besides.</summary>
    private static HttpMessageHandler TrustingHandler(string caPath)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(caPath);
        return new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, sent, errors) =>
                {
                    if (errors == SslPolicyErrors.None)
                    {
                        return true;
                    }

                    if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is null)
                    {
                        return false;
                    }

                    using var chain = new X509Chain();
                    using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    if (sent is not null)
                    {
                        foreach (var element in sent.ChainElements)
                        {
                            chain.ChainPolicy.ExtraStore.Add(element.Certificate);
                        }
                    }

                    return chain.Build(leaf);
                },
            },
        };
    }
}
