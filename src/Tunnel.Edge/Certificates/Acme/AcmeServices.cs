using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Visitors;
using Tunnel.Protocol;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// Wires ACME into the edge: options checked with the others, the services, the HTTP-01 middleware in
/// front of the visitor pipeline, the TLS-ALPN-01 middleware in front of the HTTPS handshake, and the
/// on-demand hook before a visitor handshake picks its certificate.
/// </summary>
internal static class AcmeServices
{
    private static readonly string[] KnownChallenges = ["http-01", "tls-alpn-01", "dns-01"];

    /// <summary>Adds the problems of <c>Edge:Acme</c> to <paramref name="problems"/>.</summary>
    public static void Validate(EdgeOptions options, List<string> problems)
    {
        var acme = options.Acme;
        if (!acme.IsEnabled)
        {
            return;
        }

        if (!Uri.TryCreate(acme.DirectoryUrl, UriKind.Absolute, out var url) || url.Scheme != Uri.UriSchemeHttps)
        {
            problems.Add($"Edge:Acme:DirectoryUrl '{acme.DirectoryUrl}' is not an https:// URL (ACME runs over HTTPS only).");
        }

        if (string.IsNullOrWhiteSpace(acme.StoragePath))
        {
            problems.Add("Edge:Acme:StoragePath is not set: the account key and certificates need a directory (serve --dir sets DIR/acme).");
        }

        if (acme.DirectoryCertificateAuthority is { Length: > 0 } ca && !File.Exists(ca))
        {
            problems.Add($"Edge:Acme:DirectoryCertificateAuthority '{ca}' does not exist.");
        }

        if (string.IsNullOrEmpty(acme.ExternalAccountKeyId) != string.IsNullOrEmpty(acme.ExternalAccountHmacKey))
        {
            problems.Add("Edge:Acme:ExternalAccountKeyId and ExternalAccountHmacKey go together: set both or neither.");
        }

        foreach (var entry in acme.Names)
        {
            var names = entry.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (names.Length == 0)
            {
                problems.Add($"Edge:Acme:Names has an empty entry '{entry}'.");
            }

            problems.AddRange(names.Select(n => HostnameRules.TryNormalize(n, out _, out var error) ? null : $"Edge:Acme:Names: {error}.").OfType<string>());
        }

        problems.AddRange(acme.Challenges.Where(c => !KnownChallenges.Contains(c)).Select(c => $"Edge:Acme:Challenges: '{c}' is not one of {string.Join(", ", KnownChallenges)}."));
        problems.AddRange(acme.OnDemandAllowedNames.Where(n => !HostnameRules.TryNormalize(n, out _, out _)).Select(n => $"Edge:Acme:OnDemandAllowedNames: '{n}' is not a name or *.name pattern."));
        if (acme.OnDemandOrdersPerHour < 1)
        {
            problems.Add("Edge:Acme:OnDemandOrdersPerHour must be at least 1.");
        }

        if (acme.RenewAfterLifetimeFraction is <= 0.1 or >= 1)
        {
            problems.Add("Edge:Acme:RenewAfterLifetimeFraction must be between 0.1 and 1 (2/3 by default).");
        }

        if (options.Cluster.IsEnabled)
        {
            ValidateCluster(acme, problems);
        }

        if (acme.OnDemand && acme.OnDemandHandshakeWait >= options.Limits.TlsHandshakeTimeout)
        {
            problems.Add($"Edge:Acme:OnDemandHandshakeWait ({acme.OnDemandHandshakeWait.TotalSeconds:0.#} s) must be below Edge:Limits:TlsHandshakeTimeout ({options.Limits.TlsHandshakeTimeout.TotalSeconds:0.#} s), which would end the waiting handshake first.");
        }

        if (acme.DnsPropagationDelay < TimeSpan.Zero || acme.DnsPropagationDelay >= acme.OrderTimeout)
        {
            problems.Add($"Edge:Acme:DnsPropagationDelay ({acme.DnsPropagationDelay.TotalSeconds:0.#} s) must be at least 0 and below OrderTimeout ({acme.OrderTimeout.TotalSeconds:0.#} s), which includes it.");
        }

        if (acme.RetryDelay <= TimeSpan.Zero || acme.MaxRetryDelay < acme.RetryDelay || acme.OrderTimeout <= TimeSpan.Zero || acme.OnDemandHandshakeWait < TimeSpan.Zero)
        {
            problems.Add("Edge:Acme: RetryDelay and OrderTimeout must be positive, MaxRetryDelay at least RetryDelay, OnDemandHandshakeWait not negative.");
        }
    }

    /// <summary>In a cluster: the key that seals the shared certificates' keys, and the answers' propagation wait.</summary>
    private static void ValidateCluster(AcmeOptions acme, List<string> problems)
    {
        if (acme.ClusterKeyPath is not { Length: > 0 } clusterKey)
        {
            problems.Add("Edge:Acme:ClusterKeyPath is not set: in a cluster the edges share their ACME certificates through etcd, their keys sealed with a secret file every edge has (create it once, e.g. 'openssl rand -base64 48 > acme-cluster.key; chmod 600 acme-cluster.key', and copy it to each edge).");
        }
        else if (Cluster.AcmeKeySeal.KeyFileProblem(clusterKey) is { } problem)
        {
            problems.Add(problem);
        }

        if (acme.ClusterAnswerPropagation < TimeSpan.Zero || acme.ClusterAnswerPropagation > TimeSpan.FromSeconds(30))
        {
            problems.Add("Edge:Acme:ClusterAnswerPropagation must be between 0 and 30 s.");
        }
    }

    /// <summary>Registers the ACME services when <c>Edge:Acme:DirectoryUrl</c> is set.</summary>
    public static void Add(IServiceCollection services, EdgeOptions options)
    {
        if (!options.Acme.IsEnabled)
        {
            return;
        }

        var acme = options.Acme;
        services.AddSingleton(sp =>
        {
            // In a cluster every edge answers every edge's challenges.
            var answers = new AcmeChallengeAnswers();
            if (Share(sp) is { } share)
            {
                var time = sp.GetRequiredService<TimeProvider>();
                share.Changed += shared => answers.UseShared(shared, time);
                answers.UseShared(share.Current, time);
            }

            return answers;
        });
        services.AddSingleton<AcmeMetrics>();
        services.AddSingleton(_ => new AcmeStore(acme.StoragePath!));
        services.AddSingleton<ICertificateOrders>(sp => new AcmeIssuer(acme, sp.GetRequiredService<AcmeStore>(), sp.GetRequiredService<AcmeChallengeAnswers>(),
            sp.GetService<IDnsChallengeRecords>() ?? acme.DnsChallengeRecords, sp.GetRequiredService<TimeProvider>(), Logger(sp), Share(sp)));
        services.AddSingleton(sp =>
        {
            var visitor = sp.GetRequiredService<VisitorCertificates>();
            var fallback = visitor.IsEmpty ? CreateFallback(sp.GetRequiredService<TimeProvider>()) : null;
            var routes = sp.GetRequiredService<RouteTable>();
            var cluster = sp.GetRequiredService<Cluster.IRouteStore>();
            return new AcmeCertificates(acme, sp.GetRequiredService<ICertificateOrders>(), sp.GetRequiredService<AcmeStore>(),
                byName => visitor.SetIssued(byName, fallback), name => routes.HasRoute(name) || !cluster.Current.EdgesFor(name).IsEmpty, sp.GetRequiredService<TimeProvider>(), Logger(sp),
                sp.GetRequiredService<AcmeMetrics>(), coveredByFile: visitor.FileCovers, share: Share(sp));
        });
        services.AddHostedService(sp => sp.GetRequiredService<AcmeCertificates>());
    }

    /// <summary>Whether the HTTPS port opens for ACME even with no certificate file.</summary>
    public static bool NeedsHttpsPort(EdgeOptions options) => options.Acme.IsEnabled;

    /// <summary>Answers HTTP-01 ahead of the visitor pipeline.</summary>
    public static void UseHttpChallenge(WebApplication app)
    {
        if (app.Services.GetService<AcmeChallengeAnswers>() is { } answers)
        {
            app.Use(answers.HttpMiddleware);
        }
    }

    /// <summary>Answers TLS-ALPN-01 on the HTTPS port, ahead of its handshake.</summary>
    public static void UseTlsAlpnChallenge(ListenOptions listen)
    {
        if (listen.ApplicationServices.GetService<AcmeChallengeAnswers>() is { } answers)
        {
            listen.Use(answers.TlsAlpnMiddleware);
        }
    }

    /// <summary>The on-demand hook, or a completed task when ACME is off.</summary>
    public static ValueTask BeforeHandshakeAsync(IServiceProvider services, string? serverName) =>
        services.GetService<AcmeCertificates>() is { } acme ? acme.BeforeHandshakeAsync(serverName) : ValueTask.CompletedTask;

    /// <summary>In a cluster, the shared state; else <c>null</c>.</summary>
    private static IAcmeShare? Share(IServiceProvider sp) => sp.GetService<IAcmeShare>();

    private static ILogger Logger(IServiceProvider sp) => sp.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Acme");

    /// <summary>A self-signed certificate for handshakes no certificate covers yet, when no file certificate is configured.</summary>
    private static SslStreamCertificateContext CreateFallback(TimeProvider time)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=tunnel-edge fallback (no certificate for this name yet)", key, HashAlgorithmName.SHA256);
        var now = time.GetUtcNow();
        using var certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(10));
        return SslStreamCertificateContext.Create(X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null), additionalCertificates: null, offline: true);
    }
}
