using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Tunnel.Edge.Access.SignIn;
using Tunnel.Transport.Identity;

namespace Tunnel.Transport.Tests.Identity;

/// <summary>The edge's assertion signer against the app's validator: what passes, and each way a forged or stale one is refused.</summary>
public sealed class TunnelAssertionTests : IDisposable
{
    private const string Edge = "edge-1";
    private const string Host = "app.example.com";
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(5);

    private readonly string _directory = Directory.CreateTempSubdirectory("tunnel-assertion-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 4, 0, 0, TimeSpan.Zero));
    private readonly EdgeAssertionSigner _signer;

    public TunnelAssertionTests() => _signer = EdgeAssertionSigner.LoadOrCreate(Path.Combine(_directory, EdgeAssertionSigner.KeyFile), Edge, _time);

    private static ClaimsPrincipal Alice => new(new ClaimsIdentity(
        [new Claim("sub", "user-alice"), new Claim("email", "alice@example.com"), new Claim("name", "Alice"), new Claim("groups", "staff"), new Claim("groups", "ops")], "test"));

    [Fact]
    public void An_assertion_of_the_edge_for_the_host_within_its_lifetime_gives_the_visitors_claims()
    {
        var claims = Validate(_signer.Sign(Alice, Host, profileClaims: true), out var error);
        Assert.Null(error);
        Assert.Equal(["sub=user-alice", "email=alice@example.com", "name=Alice", "groups=staff", "groups=ops"], claims!.Select(c => $"{c.Type}={c.Value}"));
        Assert.All(claims!, c => Assert.Equal(Edge, c.Issuer));

        var subjectOnly = Validate(_signer.Sign(Alice, Host, profileClaims: false), out _);
        Assert.Equal(["sub=user-alice"], subjectOnly!.Select(c => $"{c.Type}={c.Value}"));
    }

    [Fact]
    public void The_key_file_is_owner_only_and_the_same_key_signs_after_a_restart()
    {
        var path = Path.Combine(_directory, EdgeAssertionSigner.KeyFile);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        using var again = EdgeAssertionSigner.LoadOrCreate(path, Edge, _time);
        Assert.Equal(_signer.PublicKey, again.PublicKey);
    }

    [Fact]
    public void An_assertion_signed_by_another_key_is_refused()
    {
        using var other = EdgeAssertionSigner.LoadOrCreate(Path.Combine(_directory, "other.key"), Edge, _time);
        Assert.Null(Validate(other.Sign(Alice, Host, true), out var error));

        // It names both keys, so a cluster whose edges do not share access-signing.key is plain in the app's log.
        Assert.Equal($"it is signed by edge '{Edge}' with key {other.KeyId}, not with key {_signer.KeyId} that this connection's edge published: the edges of the cluster do not share access-signing.key", error);
    }

    [Fact]
    public void An_assertion_for_another_host_is_refused()
    {
        var token = _signer.Sign(Alice, "other.example.com", true);
        Assert.Null(Validate(token, out var audience));
        Assert.Contains("not for 'app.example.com'", audience, StringComparison.Ordinal);
    }

    [Fact]
    public void An_assertion_is_refused_once_its_lifetime_and_the_skew_have_passed()
    {
        var token = _signer.Sign(Alice, Host, true);
        _time.Advance(EdgeAssertionSigner.Lifetime + Skew);
        Assert.NotNull(Validate(token, out _));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(Validate(token, out var error));
        Assert.StartsWith("it expired", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tampered_payload_an_unsigned_token_or_another_algorithm_is_refused()
    {
        var parts = _signer.Sign(Alice, Host, true).Split('.');
        var payload = Encoding.UTF8.GetString(Decode(parts[1])).Replace("user-alice", "user-admin", StringComparison.Ordinal);
        Assert.Null(Validate($"{parts[0]}.{Encode(Encoding.UTF8.GetBytes(payload))}.{parts[2]}", out var tampered));
        Assert.Equal("the signature is not the edge's", tampered);

        var none = Encode("""{"alg":"none","typ":"JWT"}"""u8.ToArray());
        Assert.Null(Validate($"{none}.{parts[1]}.", out _));
        Assert.Null(Validate($"{none}.{parts[1]}.{parts[2]}", out var algorithm));
        Assert.Equal("the algorithm is not ES256", algorithm);
        Assert.Null(Validate("not-a-jwt", out _));
    }

    public void Dispose()
    {
        _signer.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private List<Claim>? Validate(string token, out string? error) =>
        TunnelAssertion.Validate(token, _signer.PublicKey, Host, _time.GetUtcNow(), Skew, out error);

    private static byte[] Decode(string part) => System.Buffers.Text.Base64Url.DecodeFromChars(part);

    private static string Encode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
