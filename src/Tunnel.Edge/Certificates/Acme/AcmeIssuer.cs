using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// Obtains certificates from the configured ACME CA: the account (found or created once), an order, one
/// challenge per authorization (HTTP-01, TLS-ALPN-01 or DNS-01, answered through <see cref="AcmeChallengeAnswers"/>
/// or <see cref="IDnsChallengeRecords"/>), a CSR for a new P-256 key, and the chain.
/// </summary>
internal sealed class AcmeIssuer : ICertificateOrders, IDisposable
{
    private static readonly string[] DefaultChallenges = ["http-01", "tls-alpn-01"];

    private readonly AcmeOptions _options;
    private readonly AcmeStore _store;
    private readonly AcmeChallengeAnswers _answers;
    private readonly IDnsChallengeRecords? _dns;
    private readonly IAcmeShare? _share;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HttpClient _http;
    private readonly ECDsa _accountKey;
    private readonly AcmeClient _client;

    public AcmeIssuer(AcmeOptions options, AcmeStore store, AcmeChallengeAnswers answers, IDnsChallengeRecords? dns, TimeProvider time, ILogger logger, IAcmeShare? share = null)
    {
        _share = share;
        _options = options;
        _store = store;
        _answers = answers;
        _dns = dns;
        _time = time;
        _logger = logger;
        _http = CreateHttpClient(options);
        _accountKey = store.AccountKey();
        _client = new AcmeClient(_http, new Uri(options.DirectoryUrl!), _accountKey, time) { AccountUrl = store.AccountUrl(options.DirectoryUrl!) };
    }

    /// <inheritdoc />
    public async Task<IssuedPem> OrderAsync(IReadOnlyList<string> names, X509Certificate2? replacing, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(_options.OrderTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            await EnsureAccountAsync(linked.Token).ConfigureAwait(false);
            var replaces = replacing is not null && await _client.OffersRenewalInfoAsync(linked.Token).ConfigureAwait(false) ? CertificateId(replacing) : null;
            var order = await _client.NewOrderAsync(names, replaces, linked.Token).ConfigureAwait(false);
            foreach (var authorization in order.Authorizations)
            {
                await AuthorizeAsync(authorization, linked.Token).ConfigureAwait(false);
            }

            order = await _client.WaitOrderAsync(order.Url, linked.Token).ConfigureAwait(false);
            if (order.Status != "ready")
            {
                throw order.Error ?? new AcmeException("order_" + order.Status, $"The order {order.Url} is {order.Status} after its authorizations, not ready.");
            }

            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            order = await _client.FinalizeAsync(order, CreateCsr(names, key), linked.Token).ConfigureAwait(false);
            if (order.Status != "valid")
            {
                order = await _client.WaitOrderAsync(order.Url, linked.Token).ConfigureAwait(false);
            }

            if (order is not { Status: "valid", Certificate: { } certificateUrl })
            {
                throw order.Error ?? new AcmeException("order_" + order.Status, $"The order {order.Url} is {order.Status} after finalization, not valid.");
            }

            var chain = await _client.CertificateAsync(certificateUrl, linked.Token).ConfigureAwait(false);
            return new IssuedPem(chain, key.ExportPkcs8PrivateKeyPem() + "\n");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new AcmeException("timeout", $"The order did not finish within {_options.OrderTimeout.TotalSeconds:0} s (Edge:Acme:OrderTimeout).");
        }
        catch (AcmeException ex) when (ex.Reason == "accountDoesNotExist")
        {
            // The CA forgot the stored account (a test CA restarted, a deactivated account): the next attempt makes one.
            _client.AccountUrl = null;
            throw;
        }
    }

    /// <inheritdoc />
    public Task<(DateTimeOffset Start, DateTimeOffset End)?> RenewalWindowAsync(X509Certificate2 certificate, CancellationToken ct) =>
        CertificateId(certificate) is { } id ? _client.RenewalWindowAsync(id, ct) : Task.FromResult<(DateTimeOffset, DateTimeOffset)?>(null);

    public void Dispose()
    {
        _http.Dispose();
        _accountKey.Dispose();
    }

    /// <summary>RFC 9773's certificate identifier: base64url(AKI key identifier) "." base64url(serial).</summary>
    internal static string? CertificateId(X509Certificate2 certificate) =>
        certificate.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().FirstOrDefault()?.KeyIdentifier is { } aki
            ? AcmeJws.Base64Url(aki.Span) + "." + AcmeJws.Base64Url(certificate.SerialNumberBytes.Span)
            : null;

    private async Task EnsureAccountAsync(CancellationToken ct)
    {
        if (_client.AccountUrl is not null)
        {
            return;
        }

        var url = await _client.AccountAsync(_options.Contacts, _options.AcceptTermsOfService, _options.ExternalAccountKeyId, _options.ExternalAccountHmacKey, ct).ConfigureAwait(false);
        _store.SaveAccountUrl(_options.DirectoryUrl!, url);
        AcmeLog.AccountReady(_logger, url, _options.DirectoryUrl!);
    }

    /// <summary>Answers one authorization's challenge and waits for the CA's verdict; the answer is withdrawn after.</summary>
    private async Task AuthorizeAsync(string url, CancellationToken ct)
    {
        var authorization = await _client.AuthorizationAsync(url, ct).ConfigureAwait(false);
        if (authorization.Status == "valid")
        {
            return;
        }

        if (authorization.Status != "pending")
        {
            throw authorization.Error ?? new AcmeException("authorization_" + authorization.Status, $"The authorization for {authorization.Name} is {authorization.Status}.");
        }

        var challenge = Choose(authorization);
        var keyAuthorization = _client.KeyAuthorization(challenge.Token ?? throw new AcmeException("malformed_response", "A challenge has no token."));
        var cleanup = await PrepareAsync(authorization.Name, challenge, keyAuthorization, ct).ConfigureAwait(false);
        try
        {
            await _client.RespondAsync(challenge.Url, ct).ConfigureAwait(false);
            authorization = await _client.WaitAuthorizationAsync(url, ct).ConfigureAwait(false);
            if (authorization.Status != "valid")
            {
                throw authorization.Error ?? new AcmeException("authorization_" + authorization.Status, $"The CA found the {challenge.Type} answer for {authorization.Name} {authorization.Status}.");
            }

            AcmeLog.Authorized(_logger, authorization.Name, challenge.Type);
        }
        finally
        {
            await cleanup().ConfigureAwait(false);
        }
    }

    private AcmeChallenge Choose(AcmeAuthorization authorization)
    {
        IEnumerable<string> preference = authorization.Wildcard ? ["dns-01"] : _options.Challenges.Count > 0 ? _options.Challenges : DefaultChallenges;
        foreach (var type in preference)
        {
            if (type == "dns-01" && _dns is null)
            {
                continue;
            }

            if (authorization.Challenges.FirstOrDefault(c => c.Type == type) is { } challenge)
            {
                return challenge;
            }
        }

        if (authorization.Wildcard && _dns is null)
        {
            throw new AcmeException("no_dns_publisher", $"{authorization.Name} is a wildcard, which only DNS-01 validates, and no DNS publisher (RFC 2136) is configured.");
        }

        throw new AcmeException("no_usable_challenge", $"The CA offers {string.Join(", ", authorization.Challenges.Select(c => c.Type))} for {authorization.Name}; the edge is set to use {string.Join(", ", preference)}.");
    }

    /// <summary>Puts the answer in place (in a cluster, on every edge); returns what withdraws it.</summary>
    private async Task<Func<Task>> PrepareAsync(string name, AcmeChallenge challenge, string keyAuthorization, CancellationToken ct)
    {
        switch (challenge.Type)
        {
            case "http-01":
                _answers.AddHttp(challenge.Token!, keyAuthorization);
                return await ShareAsync(new AcmeSharedAnswer(AcmeSharedAnswer.Http, challenge.Token!, keyAuthorization), () => _answers.RemoveHttp(challenge.Token!), ct).ConfigureAwait(false);
            case "tls-alpn-01":
                _answers.AddTlsAlpn(name, keyAuthorization, _time);
                return await ShareAsync(new AcmeSharedAnswer(AcmeSharedAnswer.TlsAlpn, name, keyAuthorization), () => _answers.RemoveTlsAlpn(name), ct).ConfigureAwait(false);
            default:
                var record = "_acme-challenge." + name;
                var value = AcmeJws.Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(keyAuthorization)));
                await _dns!.SetTxtAsync(record, value, ct).ConfigureAwait(false);
                if (_options.DnsPropagationDelay > TimeSpan.Zero)
                {
                    await Task.Delay(_options.DnsPropagationDelay, _time, ct).ConfigureAwait(false);
                }
                return async () =>
                {
                    try
                    {
                        await _dns.RemoveTxtAsync(record, value, CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        // A stale TXT record harms nothing; the order's outcome matters more.
                        AcmeLog.DnsCleanupFailed(_logger, record, ex.Message);
                    }
                };
        }
    }

    /// <summary>
    /// In a cluster, publishes <paramref name="answer"/> for the other edges and gives them
    /// <see cref="IAcmeShare.AnswerPropagation"/> to learn it, since the name's DNS may send the validator to any of them.
    /// </summary>
    private async Task<Func<Task>> ShareAsync(AcmeSharedAnswer answer, Action removeLocal, CancellationToken ct)
    {
        if (_share is null)
        {
            return () =>
            {
                removeLocal();
                return Task.CompletedTask;
            };
        }

        try
        {
            await _share.PublishAnswerAsync(answer, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is Cluster.EtcdException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            removeLocal();
            throw new AcmeException("cluster_store", $"The challenge answer could not be shared with the cluster's edges ({ex.Message}), so a validator sent to another edge would fail.", inner: ex);
        }

        await Task.Delay(_share.AnswerPropagation, _time, ct).ConfigureAwait(false);
        return async () =>
        {
            removeLocal();
            await _share.WithdrawAnswerAsync(answer, CancellationToken.None).ConfigureAwait(false);
        };
    }

    private static byte[] CreateCsr(IReadOnlyList<string> names, ECDsa key)
    {
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + names[0]), key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            san.AddDnsName(name);
        }

        request.CertificateExtensions.Add(san.Build());
        return request.CreateSigningRequest();
    }

    /// <summary>
    /// The client for the CA: with <see cref="AcmeOptions.DirectoryCertificateAuthority"/>, the directory's
    /// certificate must chain to those roots instead of the system's; validation is never turned off.
    /// </summary>
    private static HttpClient CreateHttpClient(AcmeOptions options)
    {
        var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10), PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (options.DirectoryCertificateAuthority is { Length: > 0 } path)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(path);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0 || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
                {
                    return false;
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
        }

        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30), DefaultRequestHeaders = { { "User-Agent", "tunnel-edge-acme" } } };
    }
}
