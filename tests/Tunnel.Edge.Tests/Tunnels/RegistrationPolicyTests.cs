using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Tunnels;
using Tunnel.Protocol.Credentials;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Tests.Tunnels;

/// <summary>
/// The tenant rules of a registration on their own: the hostname and connection caps per credential
/// and exclusive claims, learned from certificates and from the credential registry.
/// </summary>
public sealed class RegistrationPolicyTests : IDisposable
{
    private static readonly TimeSpan Validity = TimeSpan.FromDays(30);
    private static readonly X509Certificate2 Ca = CertificateIssuer.CreateCertificateAuthority("test CA", TimeSpan.FromDays(365));

    private readonly EdgeOptions _options = new() { Name = "edge-a" };
    private readonly SettableTime _time = new(DateTimeOffset.UtcNow);
    private readonly EdgeCredentials _credentials;
    private readonly string _directory = Directory.CreateTempSubdirectory("registration-policy-").FullName;

    public RegistrationPolicyTests()
    {
        using var server = CertificateIssuer.IssueServerCertificate(Ca, ["edge.test"], [], Validity);
        _credentials = new EdgeCredentials(server, [Ca]);
    }

    public void Dispose()
    {
        _credentials.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void A_registration_may_name_exactly_the_maximum_of_hostnames_and_one_more_is_refused_with_the_counts()
    {
        _options.MaxHostnamesPerRegistration = 2;
        var policy = CreatePolicy();
        using var origin = Issue("*.example.com");

        Assert.True(policy.TryAdmit(origin, ["a.example.com", "b.example.com"], "10.0.0.1:5000", out var lease, out _));
        lease.Dispose();

        Assert.False(policy.TryAdmit(origin, ["a.example.com", "b.example.com", "c.example.com"], "10.0.0.1:5000", out var refusedLease, out var refused));
        Assert.Null(refusedLease);
        Assert.Equal(RejectionCodes.CredentialLimit, refused.Code);
        Assert.Equal("The registration names 3 hostnames; edge edge-a takes at most 2 per registration (MaxHostnamesPerRegistration).", refused.Message);
        Assert.False(refused.Retryable);
        Assert.Equal(0, policy.ConnectionsOf(TunnelCredential.IdOf(origin)));
    }

    [Fact]
    public void A_credential_holds_at_most_its_connection_maximum_and_the_refusal_asks_to_retry_later()
    {
        _options.MaxTunnelConnectionsPerCredential = 2;
        var policy = CreatePolicy();
        using var origin = Issue("app.example.com");
        var id = TunnelCredential.IdOf(origin);

        Assert.True(policy.TryAdmit(origin, ["app.example.com"], "r", out var first, out _));
        Assert.True(policy.TryAdmit(origin, ["app.example.com"], "r", out var second, out _));
        Assert.Equal(2, policy.ConnectionsOf(id));

        Assert.False(policy.TryAdmit(origin, ["app.example.com"], "r", out var third, out var refused));
        Assert.Null(third);
        Assert.Equal(RejectionCodes.CredentialLimit, refused.Code);
        Assert.True(refused.Retryable);
        Assert.Equal(30, refused.RetryAfterSeconds);
        Assert.Contains($"The credential {id} ", refused.Message, StringComparison.Ordinal);
        Assert.Contains("holds 2 tunnel connections on edge edge-a", refused.Message, StringComparison.Ordinal);
        Assert.Equal(2, policy.ConnectionsOf(id));

        first.Dispose();
        second.Dispose();
    }

    [Fact]
    public void A_released_place_is_free_again_once_however_often_its_lease_is_disposed()
    {
        _options.MaxTunnelConnectionsPerCredential = 2;
        var policy = CreatePolicy();
        using var origin = Issue("app.example.com");
        var id = TunnelCredential.IdOf(origin);
        Assert.True(policy.TryAdmit(origin, ["app.example.com"], "r", out var first, out _));
        Assert.True(policy.TryAdmit(origin, ["app.example.com"], "r", out var second, out _));

        first.Dispose();
        first.Dispose();
        Assert.Equal(1, policy.ConnectionsOf(id));
        Assert.True(policy.TryAdmit(origin, ["app.example.com"], "r", out var third, out _));
        Assert.Equal(2, policy.ConnectionsOf(id));

        second.Dispose();
        third.Dispose();
        Assert.Equal(0, policy.ConnectionsOf(id));

        // All given back: the count starts again from nothing, not from below it.
        Assert.True(policy.TryAdmit(origin, ["app.example.com"], "r", out var again, out _));
        Assert.Equal(1, policy.ConnectionsOf(id));
        again.Dispose();
    }

    [Fact]
    public void The_connection_cap_counts_each_credential_on_its_own()
    {
        _options.MaxTunnelConnectionsPerCredential = 1;
        var policy = CreatePolicy();
        using var one = Issue("app.example.com");
        using var other = Issue("app.example.com");

        Assert.True(policy.TryAdmit(one, ["app.example.com"], "r", out var first, out _));
        Assert.True(policy.TryAdmit(other, ["app.example.com"], "r", out var second, out _));
        Assert.False(policy.TryAdmit(one, ["app.example.com"], "r", out _, out _));

        first.Dispose();
        second.Dispose();
    }

    [Fact]
    public void A_name_claimed_exclusively_is_refused_to_a_wildcard_credential_and_the_reason_says_so()
    {
        var policy = CreatePolicy();
        using var claimant = Issue(exclusive: true, "app.example.com");
        using var wildcard = Issue("*.example.com");
        Admit(policy, claimant, "app.example.com");

        Assert.False(policy.TryAdmit(wildcard, ["other.example.com", "app.example.com"], "10.0.0.9:1", out var lease, out var refused));
        Assert.Null(lease);
        Assert.Equal(RejectionCodes.HostnameClaimed, refused.Code);
        Assert.False(refused.Retryable);
        Assert.Equal(
            $"'app.example.com' is claimed exclusively by credential {TunnelCredential.IdOf(claimant)}; the credential {TunnelCredential.IdOf(wildcard)} covers it by a wildcard but may not register it.",
            refused.Message);
        Assert.Equal(0, policy.ConnectionsOf(TunnelCredential.IdOf(wildcard)));

        // Its other names stay its own.
        Admit(policy, wildcard, "other.example.com");
    }

    [Fact]
    public void A_name_claimed_exclusively_is_refused_to_another_credential_that_names_it_exactly()
    {
        var policy = CreatePolicy();
        using var claimant = Issue(exclusive: true, "app.example.com");
        using var exact = Issue("app.example.com");
        Admit(policy, claimant, "app.example.com");

        Assert.False(policy.TryAdmit(exact, ["app.example.com"], "r", out _, out var refused));
        Assert.Equal(RejectionCodes.HostnameClaimed, refused.Code);
        Assert.EndsWith($"the credential {TunnelCredential.IdOf(exact)} covers it but may not register it.", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_credentials_that_both_claim_a_name_may_both_register_it()
    {
        var policy = CreatePolicy();
        using var one = Issue(exclusive: true, "app.example.com");
        using var other = Issue(exclusive: true, "app.example.com");

        Admit(policy, one, "app.example.com");
        Admit(policy, other, "app.example.com");
        Admit(policy, one, "app.example.com");
    }

    [Fact]
    public void A_certificate_without_a_claim_holds_no_name_against_others()
    {
        var policy = CreatePolicy();
        using var first = Issue("app.example.com");
        using var wildcard = Issue("*.example.com");
        Admit(policy, first, "app.example.com");

        Admit(policy, wildcard, "app.example.com");
    }

    [Fact]
    public void A_revoked_claimant_no_longer_keeps_its_name_from_others()
    {
        var policy = CreatePolicy();
        using var claimant = Issue(exclusive: true, "app.example.com");
        using var wildcard = Issue("*.example.com");
        Admit(policy, claimant, "app.example.com");
        Assert.False(policy.TryAdmit(wildcard, ["app.example.com"], "r", out _, out _));

        _credentials.UseRevocations(new RevocationList([new RevokedCredential(TunnelCredential.IdOf(claimant), _time.GetUtcNow(), "laptop stolen")]));

        Admit(policy, wildcard, "app.example.com");
    }

    [Fact]
    public void An_expired_claimant_no_longer_keeps_its_name_from_others()
    {
        var policy = CreatePolicy();
        using var claimant = Issue(exclusive: true, "app.example.com");
        using var wildcard = Issue("*.example.com");
        Admit(policy, claimant, "app.example.com");
        Assert.False(policy.TryAdmit(wildcard, ["app.example.com"], "r", out _, out _));

        _time.Now = claimant.NotAfter.ToUniversalTime() + TimeSpan.FromSeconds(1);

        Admit(policy, wildcard, "app.example.com");
    }

    [Fact]
    public void A_claim_in_the_registry_holds_before_its_credential_first_connects()
    {
        var registry = UseRegistry();
        CredentialRegistry.Add(registry, Registered("C1A1", "payments team", exclusive: true, "app.example.com"));
        var policy = CreatePolicy();
        using var wildcard = Issue("*.example.com");

        Assert.False(policy.TryAdmit(wildcard, ["app.example.com"], "r", out _, out var refused));
        Assert.Equal(RejectionCodes.HostnameClaimed, refused.Code);
        Assert.StartsWith("'app.example.com' is claimed exclusively by credential C1A1 (payments team); ", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wildcard_in_an_exclusive_registry_entry_claims_nothing()
    {
        var registry = UseRegistry();
        CredentialRegistry.Add(registry, Registered("C1A1", "", exclusive: true, "*.example.com", "app.example.com"));
        var policy = CreatePolicy();
        using var other = Issue("*.example.com");

        Admit(policy, other, "www.example.com");
        Assert.False(policy.TryAdmit(other, ["app.example.com"], "r", out _, out _));
    }

    [Fact]
    public void A_registry_entry_that_is_not_exclusive_claims_nothing()
    {
        var registry = UseRegistry();
        CredentialRegistry.Add(registry, Registered("C1A1", "", exclusive: false, "app.example.com"));
        var policy = CreatePolicy();
        using var other = Issue("*.example.com");

        Admit(policy, other, "app.example.com");
    }

    [Fact]
    public void A_claim_added_to_the_registry_later_is_read_at_the_next_registration_and_a_corrupt_file_keeps_it()
    {
        var registry = UseRegistry();
        var policy = CreatePolicy();
        using var other = Issue("*.example.com");
        Admit(policy, other, "app.example.com");

        CredentialRegistry.Add(registry, Registered("C1A1", "", exclusive: true, "app.example.com"));
        Assert.False(policy.TryAdmit(other, ["app.example.com"], "r", out _, out _));

        File.WriteAllText(registry, "{ not json");
        Assert.False(policy.TryAdmit(other, ["app.example.com"], "r", out _, out var refused));
        Assert.Equal(RejectionCodes.HostnameClaimed, refused.Code);
    }

    [Fact]
    public void A_certificate_takes_its_label_from_the_registry_in_the_reason()
    {
        var registry = UseRegistry();
        using var claimant = Issue(exclusive: true, "app.example.com");
        var id = TunnelCredential.IdOf(claimant);
        CredentialRegistry.Add(registry, Registered(id, "payments team", exclusive: true, "app.example.com"));
        var policy = CreatePolicy();
        using var other = Issue("*.example.com");
        Admit(policy, claimant, "app.example.com");

        Assert.False(policy.TryAdmit(other, ["app.example.com"], "r", out _, out var refused));
        Assert.StartsWith($"'app.example.com' is claimed exclusively by credential {id} (payments team); ", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Overlaps_list_credentials_that_may_serve_and_share_a_name()
    {
        var policy = CreatePolicy();
        using var one = Issue("app.example.com");
        using var other = Issue("*.example.com");
        using var unrelated = Issue("elsewhere.test");
        Admit(policy, one, "app.example.com");
        Admit(policy, other, "www.example.com");
        Admit(policy, unrelated, "elsewhere.test");

        var overlap = Assert.Single(policy.Overlaps());
        Assert.Equal(
            new[] { TunnelCredential.IdOf(one), TunnelCredential.IdOf(other) }.Order(StringComparer.Ordinal),
            new[] { overlap.Holder.Id, overlap.Other.Id }.Order(StringComparer.Ordinal));

        _credentials.UseRevocations(new RevocationList([new RevokedCredential(TunnelCredential.IdOf(other), _time.GetUtcNow(), "gone")]));
        Assert.Empty(policy.Overlaps());
    }

    private RegistrationPolicy CreatePolicy() =>
        new(_options, new RouteTable(), _credentials, _time, NullLogger<RegistrationPolicy>.Instance);

    private static void Admit(RegistrationPolicy policy, X509Certificate2 certificate, params string[] hostnames)
    {
        var admitted = policy.TryAdmit(certificate, hostnames, "r", out var lease, out var refused);
        Assert.True(admitted, refused?.Message);
        Assert.NotNull(lease);
    }

    private static X509Certificate2 Issue(params string[] names) => Issue(exclusive: false, names);

    private static X509Certificate2 Issue(bool exclusive, params string[] names) =>
        CertificateIssuer.IssueOriginCertificate(Ca, names, Validity, exclusive);

    private string UseRegistry()
    {
        var path = Path.Combine(_directory, "credentials.json");
        _options.CredentialRegistryPath = path;
        return path;
    }

    private IssuedCredential Registered(string id, string label, bool exclusive, params string[] hostnames)
    {
        var now = _time.GetUtcNow();
        return new IssuedCredential(id, label, hostnames, Ca.Subject, now, now, now + Validity, exclusive);
    }

    private sealed class SettableTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
