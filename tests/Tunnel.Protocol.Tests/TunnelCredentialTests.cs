using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Protocol.Tests;

/// <summary>
/// The credential file: what <c>tunnel-edge issue</c> writes reads back whole, and every way a file can be
/// wrong is refused with a message that names the file and the problem.
/// </summary>
public sealed class TunnelCredentialTests : IDisposable
{
    private static readonly string[] Hostnames = ["app.example.com", "*.api.example.com"];
    private static readonly string[] Edges = ["edge-1.example.net:7844", "srv:_tunnel._tcp.example.net"];

    private readonly X509Certificate2 _ca = CreateCa();
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("tunnel-protocol-credential-");

    public void Dispose()
    {
        _ca.Dispose();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public void A_credential_round_trips_through_its_file_text()
    {
        using var origin = IssueOrigin(ECDsa.Create(ECCurve.NamedCurves.nistP256));
        var written = TunnelCredential.FromCertificate(origin, Hostnames, _ca.ExportCertificatePem(), Edges, "edge.example.net");

        var read = TunnelCredential.Parse(written.ToJson(), "origin.json");

        Assert.Equal(TunnelCredential.CurrentFormat, read.Format);
        Assert.Equal("1BCD0142", read.Id);
        Assert.Equal(Hostnames, read.Hostnames);
        Assert.Equal(Edges, read.Edges);
        Assert.Equal("edge.example.net", read.EdgeServerName);
        Assert.Equal(new DateTimeOffset(origin.NotBefore.ToUniversalTime()), read.NotBefore);
        Assert.Equal(new DateTimeOffset(origin.NotAfter.ToUniversalTime()), read.NotAfter);
        Assert.Equal(TimeSpan.Zero, read.NotAfter.Offset);

        // Each PEM ends its last line, so `jq -r .certificate` (or .key) writes a file every PEM reader takes.
        Assert.EndsWith("-----END CERTIFICATE-----\n", read.Certificate, StringComparison.Ordinal);
        Assert.EndsWith("-----END PRIVATE KEY-----\n", read.Key, StringComparison.Ordinal);
        using var certificate = read.CreateCertificate();
        Assert.Equal(origin.Thumbprint, certificate.Thumbprint);
        Assert.True(certificate.HasPrivateKey);
        var ca = Assert.Single(read.CreateEdgeCas());
        Assert.Equal(_ca.Thumbprint, ca.Thumbprint);
    }

    [Fact]
    public void A_credential_with_an_RSA_key_round_trips()
    {
        using var origin = IssueOrigin(RSA.Create(2048));
        var written = TunnelCredential.FromCertificate(origin, Hostnames, _ca.ExportCertificatePem(), [], edgeServerName: null);

        using var certificate = TunnelCredential.Parse(written.ToJson(), "rsa.json").CreateCertificate();

        Assert.Equal(origin.Thumbprint, certificate.Thumbprint);
        Assert.NotNull(certificate.GetRSAPrivateKey());
    }

    [Fact]
    public void The_file_is_indented_camel_case_JSON_that_leaves_out_an_unset_server_name()
    {
        using var origin = IssueOrigin(ECDsa.Create(ECCurve.NamedCurves.nistP256));

        var json = TunnelCredential.FromCertificate(origin, Hostnames, _ca.ExportCertificatePem(), Edges, edgeServerName: "").ToJson();

        Assert.StartsWith("{\n  \"format\": \"tunnel-credential/1\",\n  \"id\": \"1BCD0142\",", json.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.DoesNotContain("edgeServerName", json, StringComparison.Ordinal);
        Assert.Null(TunnelCredential.Parse(json, "c.json").EdgeServerName);
    }

    [Fact]
    public void A_certificate_without_its_private_key_makes_no_credential()
    {
        using var origin = IssueOrigin(ECDsa.Create(ECCurve.NamedCurves.nistP256));
        using var publicOnly = X509CertificateLoader.LoadCertificate(origin.RawData);

        var error = Assert.Throws<InvalidOperationException>(() => TunnelCredential.FromCertificate(publicOnly, Hostnames, _ca.ExportCertificatePem(), Edges, null));

        Assert.Equal("The certificate has no exportable private key.", error.Message);
    }

    [Fact]
    public void The_id_of_a_certificate_is_its_serial_number_in_upper_case_hex()
    {
        using var origin = IssueOrigin(ECDsa.Create(ECCurve.NamedCurves.nistP256));

        Assert.Equal("1BCD0142", TunnelCredential.IdOf(origin));
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("")]
    public void Text_that_is_not_JSON_is_refused_naming_the_file(string text)
    {
        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse(text, "/etc/tunnel/origin.json"));

        Assert.StartsWith("The credential file '/etc/tunnel/origin.json' is not valid JSON: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_holding_null_is_refused_as_empty()
    {
        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse("null", "origin.json"));

        Assert.Equal("The credential file 'origin.json' is empty.", error.Message);
    }

    [Fact]
    public void A_file_of_another_format_is_refused_naming_both_formats()
    {
        var json = Valid() with { Format = "tunnel-credential/2" };

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse(json.ToJson(), "origin.json"));

        Assert.Equal("The credential file 'origin.json' has format 'tunnel-credential/2'; this version reads 'tunnel-credential/1'.", error.Message);
    }

    [Fact]
    public void A_key_that_does_not_match_the_certificate_is_refused()
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var credential = Valid() with { Key = other.ExportPkcs8PrivateKeyPem() };

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse(credential.ToJson(), "origin.json"));

        Assert.StartsWith("The credential 'origin.json' holds no usable certificate and key: ", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("certificate")]
    [InlineData("key")]
    public void A_missing_certificate_or_key_is_refused(string missing)
    {
        var credential = missing == "key" ? Valid() with { Key = "" } : Valid() with { Certificate = "" };

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse(credential.ToJson(), "origin.json"));

        Assert.StartsWith("The credential 'origin.json' holds no usable certificate and key: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_credential_without_an_edge_CA_is_refused()
    {
        var credential = Valid() with { EdgeCa = "" };

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse(credential.ToJson(), "origin.json"));

        Assert.Equal("The credential 'origin.json' has no edge CA certificate.", error.Message);
    }

    [Fact]
    public void An_unreadable_edge_CA_is_refused()
    {
        var credential = Valid() with { EdgeCa = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n" };

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Parse(credential.ToJson(), "origin.json"));

        Assert.StartsWith("The credential 'origin.json' has an unreadable edge CA: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_owner_only_credential_file_loads()
    {
        var credential = Valid();
        var path = Write(credential.ToJson(), UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var loaded = TunnelCredential.Load(path);

        Assert.Equal(credential.Id, loaded.Id);
        Assert.Equal(credential.Certificate, loaded.Certificate);
    }

    [Fact]
    public void A_credential_file_other_users_may_read_is_refused_with_the_fix()
    {
        var path = Write(Valid().ToJson(), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Load(path));

        Assert.Equal(SecretFilePermissions.Problem(path, "credential file"), error.Message);
        Assert.Contains($"chmod 600 '{path}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_credential_file_is_refused_naming_it()
    {
        var path = Path.Combine(_directory.FullName, "absent.json");

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Load(path));

        Assert.StartsWith($"Cannot read the credential file '{path}': ", error.Message, StringComparison.Ordinal);
        Assert.IsType<FileNotFoundException>(error.InnerException);
    }

    [Fact]
    public void A_malformed_credential_file_is_refused_naming_it()
    {
        var path = Write("{\"format\": \"tunnel-credential/1\"", UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var error = Assert.Throws<InvalidDataException>(() => TunnelCredential.Load(path));

        Assert.StartsWith($"The credential file '{path}' is not valid JSON: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Loading_no_path_is_an_argument_error()
    {
        Assert.Throws<ArgumentException>(() => TunnelCredential.Load(""));
        Assert.Throws<ArgumentNullException>(() => TunnelCredential.Parse(null!, "x"));
        Assert.Throws<ArgumentNullException>(() => TunnelCredential.IdOf(null!));
        Assert.Throws<ArgumentNullException>(() => TunnelCredential.FromCertificate(null!, Hostnames, "", Edges, null));
    }

    private TunnelCredential Valid()
    {
        using var origin = IssueOrigin(ECDsa.Create(ECCurve.NamedCurves.nistP256));
        return TunnelCredential.FromCertificate(origin, Hostnames, _ca.ExportCertificatePem(), Edges, null);
    }

    private string Write(string text, UnixFileMode mode)
    {
        var path = Path.Combine(_directory.FullName, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, text);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }

        return path;
    }

    private static X509Certificate2 CreateCa()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Test Edge CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>An origin certificate signed by the test CA, with serial number 1B CD 01 42 (hex letters, so case shows).</summary>
    private X509Certificate2 IssueOrigin(AsymmetricAlgorithm key)
    {
        using (key)
        {
            var request = key is RSA rsa
                ? new CertificateRequest("CN=origin", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
                : new CertificateRequest("CN=origin", (ECDsa)key, HashAlgorithmName.SHA256);
            var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
            using var caKey = _ca.GetECDsaPrivateKey()!;
            using var issued = request.Create(_ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), notBefore, notBefore.AddDays(1), [0x1B, 0xCD, 0x01, 0x42]);
            return key is RSA withRsa ? issued.CopyWithPrivateKey(withRsa) : issued.CopyWithPrivateKey((ECDsa)key);
        }
    }
}
