using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// A small ACME client (RFC 8555): the directory, nonces, signed requests with the account's ES256 key,
/// the account (with External Account Binding), orders, authorizations, challenges, finalization, polls and
/// the certificate download, and renewal information (RFC 9773). It knows the protocol only: which names,
/// which challenge and where the answers are served is <see cref="AcmeIssuer"/>'s business.
/// </summary>
/// <remarks>
/// One instance serves one account at one CA. Requests are serialized (a nonce is used once, and the CA's
/// limits favour one order at a time); every failure is an <see cref="AcmeException"/> with the CA's problem
/// type and detail, or the edge's own short cause when the CA could not be reached.
/// </remarks>
internal sealed class AcmeClient
{
    private const string JoseJson = "application/jose+json";

    // Polls start quick (Pebble and Let's Encrypt validate in well under a second) and slow down; a CA's
    // Retry-After is honoured inside these bounds, so a CA cannot park an order for hours.
    private static readonly TimeSpan FirstPollDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxPollDelay = TimeSpan.FromSeconds(10);

    private readonly HttpClient _http;
    private readonly ECDsa _key;
    private readonly Uri _directoryUrl;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _serial = new(1, 1);
    private AcmeDirectory? _directory;
    private string? _nonce;

    /// <summary>A client of the CA at <paramref name="directoryUrl"/> with the account key <paramref name="accountKey"/>.</summary>
    public AcmeClient(HttpClient http, Uri directoryUrl, ECDsa accountKey, TimeProvider time)
    {
        _http = http;
        _directoryUrl = directoryUrl;
        _key = accountKey;
        _time = time;
    }

    /// <summary>The account's URL (the JWS <c>kid</c>), once known.</summary>
    public string? AccountUrl { get; set; }

    /// <summary>The key authorization for a challenge token (section 8.1).</summary>
    public string KeyAuthorization(string token) => token + "." + AcmeJws.Thumbprint(_key);

    /// <summary>The directory, fetched once.</summary>
    public async Task<AcmeDirectory> DirectoryAsync(CancellationToken ct)
    {
        if (_directory is { } known)
        {
            return known;
        }

        var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, _directoryUrl), ct).ConfigureAwait(false);
        return _directory = AcmeDirectory.Parse(response.Json);
    }

    /// <summary>
    /// Finds or creates the account (section 7.3) and sets <see cref="AccountUrl"/>. With
    /// <paramref name="eabKeyId"/> the request carries an External Account Binding; a directory that
    /// requires one and none configured fails here, saying so.
    /// </summary>
    public async Task<string> AccountAsync(IReadOnlyList<string> contacts, bool agreeToTerms, string? eabKeyId, string? eabHmacKey, CancellationToken ct)
    {
        var directory = await DirectoryAsync(ct).ConfigureAwait(false);
        if (directory.ExternalAccountRequired && (string.IsNullOrEmpty(eabKeyId) || string.IsNullOrEmpty(eabHmacKey)))
        {
            throw new AcmeException("external_account_required", "The CA requires External Account Binding: set Edge:Acme:ExternalAccountKeyId and ExternalAccountHmacKey to what it issued.");
        }

        var payload = new StringBuilder("{\"termsOfServiceAgreed\":").Append(agreeToTerms ? "true" : "false");
        if (contacts.Count > 0)
        {
            payload.Append(",\"contact\":").Append(JsonSerializer.Serialize(contacts.ToArray(), AcmeJsonContext.Default.StringArray));
        }

        if (!string.IsNullOrEmpty(eabKeyId) && !string.IsNullOrEmpty(eabHmacKey))
        {
            payload.Append(",\"externalAccountBinding\":").Append(AcmeJws.ExternalAccountBinding(_key, eabKeyId, eabHmacKey, directory.NewAccount));
        }

        payload.Append('}');
        var response = await PostAsync(directory.NewAccount, payload.ToString(), useKid: false, ct).ConfigureAwait(false);
        return AccountUrl = response.Location ?? throw new AcmeException("malformed_response", "The CA's newAccount answer has no Location.");
    }

    /// <summary>Places an order for <paramref name="names"/>; <paramref name="replaces"/> is the ARI id of the certificate it renews.</summary>
    public async Task<AcmeOrder> NewOrderAsync(IEnumerable<string> names, string? replaces, CancellationToken ct)
    {
        var directory = await DirectoryAsync(ct).ConfigureAwait(false);
        var identifiers = string.Join(",", names.Select(n => $$"""{"type":"dns","value":{{AcmeJws.Quote(n)}}}"""));
        var payload = $$"""{"identifiers":[{{identifiers}}]{{(replaces is null ? "" : ",\"replaces\":" + AcmeJws.Quote(replaces))}}}""";
        var response = await PostAsync(directory.NewOrder, payload, useKid: true, ct).ConfigureAwait(false);
        return AcmeOrder.Parse(response.Location ?? throw new AcmeException("malformed_response", "The CA's newOrder answer has no Location."), response.Json);
    }

    /// <summary>Reads an authorization.</summary>
    public async Task<AcmeAuthorization> AuthorizationAsync(string url, CancellationToken ct) =>
        AcmeAuthorization.Parse(url, (await PostAsync(url, null, useKid: true, ct).ConfigureAwait(false)).Json);

    /// <summary>Tells the CA a challenge's answer is in place (section 7.5.1).</summary>
    public Task RespondAsync(string challengeUrl, CancellationToken ct) => PostAsync(challengeUrl, "{}", useKid: true, ct);

    /// <summary>Polls an authorization until it is no longer pending or processing.</summary>
    public async Task<AcmeAuthorization> WaitAuthorizationAsync(string url, CancellationToken ct)
    {
        var delay = FirstPollDelay;
        while (true)
        {
            var response = await PostAsync(url, null, useKid: true, ct).ConfigureAwait(false);
            var authorization = AcmeAuthorization.Parse(url, response.Json);
            if (authorization.Status is not ("pending" or "processing"))
            {
                return authorization;
            }

            delay = await PauseAsync(delay, response.RetryAfter, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Sends the CSR (DER) to the order's finalize URL (section 7.4).</summary>
    public async Task<AcmeOrder> FinalizeAsync(AcmeOrder order, byte[] csr, CancellationToken ct)
    {
        var response = await PostAsync(order.Finalize, $$"""{"csr":"{{AcmeJws.Base64Url(csr)}}"}""", useKid: true, ct).ConfigureAwait(false);
        return AcmeOrder.Parse(order.Url, response.Json);
    }

    /// <summary>Polls an order until it is no longer pending, ready or processing.</summary>
    public async Task<AcmeOrder> WaitOrderAsync(string url, CancellationToken ct)
    {
        var delay = FirstPollDelay;
        while (true)
        {
            var response = await PostAsync(url, null, useKid: true, ct).ConfigureAwait(false);
            var order = AcmeOrder.Parse(url, response.Json);
            if (order.Status is not ("processing" or "pending"))
            {
                return order;
            }

            delay = await PauseAsync(delay, response.RetryAfter, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Downloads the certificate chain (PEM, leaf first).</summary>
    public async Task<string> CertificateAsync(string url, CancellationToken ct) =>
        (await PostAsync(url, null, useKid: true, ct).ConfigureAwait(false)).Text;

    /// <summary>
    /// The CA's suggested renewal window for a certificate (RFC 9773), or <c>null</c> when the directory
    /// offers no renewal information.
    /// </summary>
    public async Task<(DateTimeOffset Start, DateTimeOffset End)?> RenewalWindowAsync(string certificateId, CancellationToken ct)
    {
        var directory = await DirectoryAsync(ct).ConfigureAwait(false);
        if (directory.RenewalInfo is not { } endpoint)
        {
            return null;
        }

        var response = await SendAsync(new HttpRequestMessage(HttpMethod.Get, endpoint.TrimEnd('/') + "/" + certificateId), ct).ConfigureAwait(false);
        var window = response.Json.GetProperty("suggestedWindow");
        return (DateTimeOffset.Parse(AcmeDirectory.Required(window, "start"), System.Globalization.CultureInfo.InvariantCulture),
            DateTimeOffset.Parse(AcmeDirectory.Required(window, "end"), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Whether the directory offers renewal information (fetches the directory if needed).</summary>
    public async Task<bool> OffersRenewalInfoAsync(CancellationToken ct) => (await DirectoryAsync(ct).ConfigureAwait(false)).RenewalInfo is not null;

    /// <summary>Reads a problem document (or an order's or challenge's <c>error</c> member).</summary>
    internal static AcmeException Problem(JsonElement json, int? status, TimeSpan? retryAfter)
    {
        var type = AcmeDirectory.Optional(json, "type") ?? "about:blank";
        var detail = AcmeDirectory.Optional(json, "detail") ?? "(no detail)";
        if (json.ValueKind == JsonValueKind.Object && json.TryGetProperty("subproblems", out var subproblems) && subproblems.ValueKind == JsonValueKind.Array)
        {
            detail += " (" + string.Join("; ", subproblems.EnumerateArray().Select(s =>
                $"{AcmeDirectory.Optional(s, "type")}: {AcmeDirectory.Optional(s, "detail")}")) + ")";
        }

        return new AcmeException(type, detail, status, retryAfter);
    }

    /// <summary>A signed POST; a <c>badNonce</c> answer is retried once with the fresh nonce it carried.</summary>
    private async Task<Response> PostAsync(string url, string? payload, bool useKid, CancellationToken ct)
    {
        if (useKid && AccountUrl is null)
        {
            throw new InvalidOperationException("The ACME account is not known yet.");
        }

        await _serial.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                var nonce = _nonce ?? await NewNonceAsync(ct).ConfigureAwait(false);
                _nonce = null;
                var body = new ByteArrayContent(AcmeJws.Sign(_key, useKid ? AccountUrl : null, nonce, url, payload));
                body.Headers.ContentType = new MediaTypeHeaderValue(JoseJson);
                try
                {
                    return await SendAsync(new HttpRequestMessage(HttpMethod.Post, url) { Content = body }, ct).ConfigureAwait(false);
                }
                catch (AcmeException ex) when (ex.IsBadNonce && attempt == 0)
                {
                }
            }
        }
        finally
        {
            _serial.Release();
        }
    }

    private async Task<string> NewNonceAsync(CancellationToken ct)
    {
        var directory = await DirectoryAsync(ct).ConfigureAwait(false);
        await SendAsync(new HttpRequestMessage(HttpMethod.Head, directory.NewNonce), ct).ConfigureAwait(false);
        return _nonce ?? throw new AcmeException("malformed_response", "The CA's newNonce answer has no Replay-Nonce.");
    }

    /// <summary>Sends a request; keeps the Replay-Nonce; turns an error answer or a transport failure into an <see cref="AcmeException"/>.</summary>
    private async Task<Response> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        using (request)
        {
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                throw Unreachable(request.RequestUri!, ex);
            }

            using (response)
            {
                if (response.Headers.TryGetValues("Replay-Nonce", out var nonces))
                {
                    _nonce = nonces.FirstOrDefault();
                }

                var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                var retryAfter = RetryAfter(response.Headers.RetryAfter);
                var json = Parse(text, response.Content.Headers.ContentType?.MediaType);
                if (!response.IsSuccessStatusCode)
                {
                    throw json.ValueKind == JsonValueKind.Object
                        ? Problem(json, (int)response.StatusCode, retryAfter)
                        : new AcmeException("http_" + (int)response.StatusCode, $"{request.Method} {request.RequestUri} answered {(int)response.StatusCode} {response.ReasonPhrase}.", (int)response.StatusCode, retryAfter);
                }

                return new Response(json, text, response.Headers.Location?.ToString(), retryAfter);
            }
        }
    }

    private TimeSpan? RetryAfter(RetryConditionHeaderValue? header) =>
        header?.Delta ?? (header?.Date is { } date ? date - _time.GetUtcNow() : null);

    private static JsonElement Parse(string text, string? mediaType)
    {
        if (mediaType is null || !mediaType.Contains("json", StringComparison.OrdinalIgnoreCase) || text.Length == 0)
        {
            return default;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new AcmeException("malformed_response", $"The CA's answer is not JSON: {ex.Message}");
        }
    }

    /// <summary>Waits before the next poll: the CA's Retry-After within bounds, else the doubling delay.</summary>
    private async Task<TimeSpan> PauseAsync(TimeSpan delay, TimeSpan? retryAfter, CancellationToken ct)
    {
        var wait = retryAfter is { } asked ? TimeSpan.FromTicks(Math.Clamp(asked.Ticks, FirstPollDelay.Ticks, MaxPollDelay.Ticks)) : delay;
        await Task.Delay(wait, _time, ct).ConfigureAwait(false);
        return TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxPollDelay.Ticks));
    }

    private static AcmeException Unreachable(Uri url, Exception ex)
    {
        var reason = ex switch
        {
            TaskCanceledException => "timeout",
            HttpRequestException { InnerException: SocketException { SocketErrorCode: SocketError.ConnectionRefused } } => "connection_refused",
            HttpRequestException { InnerException: SocketException } => "unreachable",
            HttpRequestException { InnerException: AuthenticationException } => "tls",
            _ => "unreachable",
        };
        return new AcmeException(reason, $"Cannot reach the CA at {url.GetLeftPart(UriPartial.Authority)}: {ex.GetBaseException().Message}", inner: ex);
    }

    private sealed record Response(JsonElement Json, string Text, string? Location, TimeSpan? RetryAfter);
}
