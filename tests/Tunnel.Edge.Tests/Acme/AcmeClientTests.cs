using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.Edge.Tests.Acme;

/// <summary><see cref="AcmeClient"/>'s protocol details against scripted CA answers.</summary>
public class AcmeClientTests
{
    private const string Directory = "https://ca.test/dir";

    [Fact]
    public async Task Retries_a_badNonce_once_with_the_nonce_that_came_with_it()
    {
        var ca = new ScriptedCa(externalAccountRequired: false);
        ca.Then(HttpStatusCode.BadRequest, Problem("badNonce", "stale"), nonce: "fresh-1");
        ca.Then(HttpStatusCode.Created, "{}", location: "https://ca.test/acct/1", nonce: "n2");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = new AcmeClient(new HttpClient(ca), new Uri(Directory), key, TimeProvider.System);

        Assert.Equal("https://ca.test/acct/1", await client.AccountAsync([], true, null, null, CancellationToken.None));
        Assert.Equal(["first-nonce", "fresh-1"], ca.Posts.Select(p => Header(p)["nonce"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_second_badNonce_in_a_row_is_an_error_with_its_type_and_detail()
    {
        var ca = new ScriptedCa(externalAccountRequired: false);
        ca.Then(HttpStatusCode.BadRequest, Problem("badNonce", "stale"), nonce: "fresh-1");
        ca.Then(HttpStatusCode.BadRequest, Problem("badNonce", "stale again"), nonce: "fresh-2");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = new AcmeClient(new HttpClient(ca), new Uri(Directory), key, TimeProvider.System);

        var error = await Assert.ThrowsAsync<AcmeException>(() => client.AccountAsync([], true, null, null, CancellationToken.None));
        Assert.Equal("badNonce", error.Reason);
        Assert.Equal("stale again", error.Detail);
        Assert.Equal(2, ca.Posts.Count);
    }

    [Fact]
    public async Task A_rate_limited_answer_keeps_the_CA_s_retry_after()
    {
        var ca = new ScriptedCa(externalAccountRequired: false);
        ca.Then(HttpStatusCode.TooManyRequests, Problem("rateLimited", "too many new orders"), nonce: "n", retryAfter: TimeSpan.FromMinutes(7));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = new AcmeClient(new HttpClient(ca), new Uri(Directory), key, TimeProvider.System) { AccountUrl = "https://ca.test/acct/1" };

        var error = await Assert.ThrowsAsync<AcmeException>(() => client.NewOrderAsync(["a.example.com"], null, CancellationToken.None));
        Assert.Equal("rateLimited", error.Reason);
        Assert.Equal(TimeSpan.FromMinutes(7), error.RetryAfter);
        Assert.Equal(429, error.Status);
    }

    [Fact]
    public async Task Signs_requests_with_ES256_and_binds_the_external_account_with_the_HMAC_key_when_the_directory_requires_it()
    {
        var hmacKey = RandomNumberGenerator.GetBytes(32);
        var ca = new ScriptedCa(externalAccountRequired: true);
        ca.Then(HttpStatusCode.Created, "{}", location: "https://ca.test/acct/1", nonce: "n2");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = new AcmeClient(new HttpClient(ca), new Uri(Directory), key, TimeProvider.System);

        var refused = await Assert.ThrowsAsync<AcmeException>(() => client.AccountAsync([], true, null, null, CancellationToken.None));
        Assert.Equal("external_account_required", refused.Reason);
        await client.AccountAsync(["mailto:ops@example.com"], true, "kid-1", AcmeJws.Base64Url(hmacKey), CancellationToken.None);

        var post = Assert.Single(ca.Posts);
        Assert.Equal("ES256", Header(post)["alg"]!.GetValue<string>());
        Assert.True(key.VerifyData(Encoding.ASCII.GetBytes(post["protected"]!.GetValue<string>() + "." + post["payload"]!.GetValue<string>()),
            AcmeJws.FromBase64Url(post["signature"]!.GetValue<string>()), HashAlgorithmName.SHA256), "the JWS verifies with the account key");

        var payload = JsonSerializer.Deserialize<JsonElement>(AcmeJws.FromBase64Url(post["payload"]!.GetValue<string>()));
        var binding = payload.GetProperty("externalAccountBinding");
        var bindingHeader = JsonSerializer.Deserialize<JsonElement>(AcmeJws.FromBase64Url(binding.GetProperty("protected").GetString()!));
        Assert.Equal("HS256", bindingHeader.GetProperty("alg").GetString());
        Assert.Equal("kid-1", bindingHeader.GetProperty("kid").GetString());
        Assert.Equal("https://ca.test/new-acct", bindingHeader.GetProperty("url").GetString());
        Assert.Equal(AcmeJws.Jwk(key), Encoding.UTF8.GetString(AcmeJws.FromBase64Url(binding.GetProperty("payload").GetString()!)));
        var mac = HMACSHA256.HashData(hmacKey, Encoding.ASCII.GetBytes(binding.GetProperty("protected").GetString() + "." + binding.GetProperty("payload").GetString()));
        Assert.Equal(AcmeJws.Base64Url(mac), binding.GetProperty("signature").GetString());
    }

    [Fact]
    public void The_TLS_ALPN_01_certificate_carries_the_key_authorization_digest_in_a_critical_acmeIdentifier_extension()
    {
        using var certificate = AcmeChallengeAnswers.CreateTlsAlpnCertificate("a.example.com", "token.thumbprint", TimeProvider.System);

        var extension = Assert.Single(certificate.Extensions, e => e.Oid?.Value == "1.3.6.1.5.5.7.1.31");
        Assert.True(extension.Critical);
        Assert.Equal([0x04, 32, .. SHA256.HashData(Encoding.ASCII.GetBytes("token.thumbprint"))], extension.RawData);
        Assert.Equal(["a.example.com"], certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());
    }

    private static string Problem(string type, string detail) => $$"""{"type":"urn:ietf:params:acme:error:{{type}}","detail":"{{detail}}"}""";

    private static System.Text.Json.Nodes.JsonNode Header(System.Text.Json.Nodes.JsonNode post) =>
        System.Text.Json.Nodes.JsonNode.Parse(AcmeJws.FromBase64Url(post["protected"]!.GetValue<string>()))!;

    /// <summary>A CA that serves a directory and a first nonce, then answers each POST from its script in order.</summary>
    private sealed class ScriptedCa(bool externalAccountRequired) : HttpMessageHandler
    {
        private readonly Queue<Func<HttpResponseMessage>> _script = new();

        public List<System.Text.Json.Nodes.JsonNode> Posts { get; } = [];

        public void Then(HttpStatusCode status, string json, string nonce, string? location = null, TimeSpan? retryAfter = null) => _script.Enqueue(() =>
        {
            var response = new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, status < HttpStatusCode.BadRequest ? "application/json" : "application/problem+json") };
            response.Headers.Add("Replay-Nonce", nonce);
            if (location is not null)
            {
                response.Headers.Location = new Uri(location);
            }

            if (retryAfter is { } after)
            {
                response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(after);
            }

            return response;
        });

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Get)
            {
                var meta = externalAccountRequired ? "true" : "false";
                return new HttpResponseMessage(HttpStatusCode.OK)
                {
                    Content = new StringContent("""{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/new-acct","newOrder":"https://ca.test/new-order","meta":{"externalAccountRequired":""" + meta + "}}", Encoding.UTF8, "application/json"),
                };
            }

            if (request.Method == HttpMethod.Head)
            {
                var nonce = new HttpResponseMessage(HttpStatusCode.OK);
                nonce.Headers.Add("Replay-Nonce", "first-nonce");
                return nonce;
            }

            Posts.Add(System.Text.Json.Nodes.JsonNode.Parse(await request.Content!.ReadAsStringAsync(cancellationToken))!);
            return _script.Dequeue()();
        }
    }
}
