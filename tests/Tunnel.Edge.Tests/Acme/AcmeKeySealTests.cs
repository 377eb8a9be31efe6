using System.Security.Cryptography;
using Tunnel.Edge.Certificates.Acme;
using Tunnel.Edge.Cluster;

namespace Tunnel.Edge.Tests.Acme;

/// <summary>The sealing of shared certificate keys in etcd (<see cref="AcmeKeySeal"/>).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class AcmeKeySealTests
{
    private static readonly IssuedPem Pem = new("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n");

    [Fact]
    public void A_sealed_key_opens_with_the_same_cluster_key_and_is_not_readable_in_the_stored_value()
    {
        var secret = RandomNumberGenerator.GetBytes(48);
        var value = new AcmeKeySeal(secret).Seal("app.example.com", Pem, "edge-a");

        Assert.DoesNotContain("PRIVATE KEY", value, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", value, StringComparison.Ordinal);
        Assert.Contains("BEGIN CERTIFICATE", value, StringComparison.Ordinal);
        Assert.Equal(Pem, new AcmeKeySeal(secret).Open("app.example.com", value));
    }

    [Fact]
    public void A_sealed_key_does_not_open_with_another_cluster_key_under_another_id_or_beside_another_chain()
    {
        var seal = new AcmeKeySeal(RandomNumberGenerator.GetBytes(48));
        var value = seal.Seal("app.example.com", Pem, "edge-a");

        Assert.Throws<AuthenticationTagMismatchException>(() => new AcmeKeySeal(RandomNumberGenerator.GetBytes(48)).Open("app.example.com", value));
        Assert.Throws<AuthenticationTagMismatchException>(() => seal.Open("other.example.com", value));
        var otherChain = value.Replace("MIIB", "MIIC", StringComparison.Ordinal);
        Assert.Throws<AuthenticationTagMismatchException>(() => seal.Open("app.example.com", otherChain));
    }

    [Fact]
    public void A_cluster_key_file_that_is_missing_short_or_readable_by_others_is_refused_with_the_reason()
    {
        var directory = Directory.CreateTempSubdirectory("tunnel-seal-").FullName;
        try
        {
            var path = Path.Combine(directory, "acme-cluster.key");
            Assert.Contains("does not exist", AcmeKeySeal.KeyFileProblem(path), StringComparison.Ordinal);

            File.WriteAllText(path, "short");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Assert.Contains("fewer than 32 bytes", AcmeKeySeal.KeyFileProblem(path), StringComparison.Ordinal);

            File.WriteAllText(path, Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            Assert.Contains("chmod 600", AcmeKeySeal.KeyFileProblem(path), StringComparison.Ordinal);

            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Assert.Null(AcmeKeySeal.KeyFileProblem(path));
            Assert.Equal(Pem, AcmeKeySeal.FromFile(path).Open("x", AcmeKeySeal.FromFile(path).Seal("x", Pem, "edge-a")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
