using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Identity;
using Tunnel.Protocol.Credentials;
using Tunnel.Transport.Internal;

namespace Tunnel.Transport.Tests;

/// <summary>How the options and the credential file merge into what the tunnel dials with.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TunnelSettingsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tunnel-settings-").FullName;
    private readonly X509Certificate2 _ca = CertificateIssuer.CreateCertificateAuthority("Settings Test CA", TimeSpan.FromDays(1));
    private readonly X509Certificate2 _otherCa = CertificateIssuer.CreateCertificateAuthority("Other Test CA", TimeSpan.FromDays(1));

    public void Dispose()
    {
        _ca.Dispose();
        _otherCa.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void A_credential_file_alone_supplies_certificate_pinned_CA_edges_server_name_and_hostnames()
    {
        var credential = Credential(["app.example.com", "*.apps.example.com"], ["edge-a.example.com:7844", "edge-b.example.com"], "edge.example.com");
        var settings = TunnelSettings.Create(new TunnelOptions { CredentialPath = Write(credential) }, TimeProvider.System);

        var state = settings.Current;
        Assert.Equal(credential.Id, state.CredentialId);
        Assert.True(state.Certificate.HasPrivateKey);
        Assert.Equal(["app.example.com", "*.apps.example.com"], state.DialOptions.Hostnames);
        Assert.Equal(["edge-a.example.com:7844", "edge-b.example.com"], state.Edges);
        Assert.Equal("edge.example.com", state.DialOptions.EdgeServerName);
        Assert.Equal(_ca.Thumbprint, Assert.Single(state.DialOptions.TrustedEdgeCertificates).Thumbprint);
    }

    [Fact]
    public void Explicit_options_win_over_the_credential_file()
    {
        var credential = Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com");
        using var own = CertificateIssuer.IssueOriginCertificate(_otherCa, ["own.example.com"], TimeSpan.FromDays(1));
        var caPath = Path.Combine(_directory, "own-ca.pem");
        File.WriteAllText(caPath, _otherCa.ExportCertificatePem());

        var settings = TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = Write(credential),
            Edges = ["10.0.0.1:7000"],
            Hostnames = ["own.example.com"],
            EdgeServerName = "own-edge.example.com",
            Certificate = own,
            EdgeCaPath = caPath,
        }, TimeProvider.System);

        var state = settings.Current;
        Assert.Equal(TunnelCredential.IdOf(own), state.CredentialId);
        Assert.Equal(["own.example.com"], state.DialOptions.Hostnames);
        Assert.Equal(["10.0.0.1:7000"], state.Edges);
        Assert.Equal("own-edge.example.com", state.DialOptions.EdgeServerName);
        Assert.Equal(_otherCa.Thumbprint, Assert.Single(state.DialOptions.TrustedEdgeCertificates).Thumbprint);
    }

    [Fact]
    public void A_credential_without_edges_or_hostnames_lists_both_problems_with_the_others()
    {
        var credential = Credential([], [], edgeServerName: null);
        var error = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = Write(credential),
            HaConnections = 0,
            RebalanceInterval = TimeSpan.FromSeconds(-5),
        }, TimeProvider.System));

        Assert.Contains("HaConnections must be between 1 and 64", error.Message, StringComparison.Ordinal);
        Assert.Contains("RebalanceInterval must not be negative (zero turns the check off)", error.Message, StringComparison.Ordinal);
        Assert.Contains("No edge is configured: the credential file", error.Message, StringComparison.Ordinal);
        Assert.Contains("No hostname is configured: the credential file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_corrupt_credential_file_is_named_once_without_the_problems_it_would_have_solved()
    {
        var path = Path.Combine(_directory, "broken.json");
        WriteSecret(path, "{ \"format\": \"tunnel-credential/1\", \"certificate\": ");
        var error = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = path,
            ConnectTimeout = TimeSpan.Zero,
        }, TimeProvider.System));

        Assert.Contains($"The credential file '{path}' is not valid JSON", error.Message, StringComparison.Ordinal);
        Assert.Contains("ConnectTimeout must be positive", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("No edge", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("No hostname", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("No origin certificate", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_credential_or_certificate_the_problem_names_both_ways()
    {
        var error = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions(), TimeProvider.System));

        Assert.Contains("Tunnel:CredentialPath", error.Message, StringComparison.Ordinal);
        Assert.Contains("Tunnel:CertificatePath", error.Message, StringComparison.Ordinal);
        Assert.Contains("No edge is configured", error.Message, StringComparison.Ordinal);
        Assert.Contains("No hostname is configured", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_credential_with_an_invalid_edge_or_hostname_names_the_file()
    {
        var credential = Credential(["bad host"], ["edge:notaport"], edgeServerName: null);
        var path = Write(credential);
        var error = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions { CredentialPath = path }, TimeProvider.System));

        Assert.Contains($"The credential file '{path}' edges:", error.Message, StringComparison.Ordinal);
        Assert.Contains($"The credential file '{path}' hostnames:", error.Message, StringComparison.Ordinal);
        Assert.Contains("bad host", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reload_keeps_the_current_state_on_a_bad_file_and_moves_to_a_renewed_one()
    {
        var first = Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com");
        var path = Write(first);
        var settings = TunnelSettings.Create(new TunnelOptions { CredentialPath = path }, TimeProvider.System);
        var initial = settings.Current;

        Assert.Same(TunnelReload.Unchanged, settings.Reload());
        Assert.Same(initial, settings.Current);

        File.WriteAllText(path, first.ToJson()[..40]);
        var failed = settings.Reload();
        Assert.Null(failed.State);
        Assert.Contains(path, failed.Problem, StringComparison.Ordinal);
        Assert.Same(initial, settings.Current);

        var renewed = Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com");
        Write(renewed, path);
        var result = settings.Reload();
        Assert.NotNull(result.State);
        Assert.Same(result.State, settings.Current);
        Assert.Equal(renewed.Id, settings.Current.CredentialId);
        Assert.Equal(initial.Generation + 1, settings.Current.Generation);
        Assert.Equal(initial.DialOptions.ConnectorId, settings.Current.DialOptions.ConnectorId);

        // Same edges: what the selector learned is kept.
        Assert.Same(initial.Selector, settings.Current.Selector);

        var moved = Credential(["app.example.com"], ["edge-c.example.com:7844"], "edge.example.com");
        Write(moved, path);
        Assert.NotNull(settings.Reload().State);
        Assert.NotSame(initial.Selector, settings.Current.Selector);
        Assert.Equal(["edge-c.example.com:7844"], settings.Current.Edges);
    }

    [Fact]
    public void The_certificate_and_CA_files_are_watched_when_configured_that_way()
    {
        using var origin = CertificateIssuer.IssueOriginCertificate(_ca, ["app.example.com"], TimeSpan.FromDays(1));
        var certificatePath = Path.Combine(_directory, "origin.pem");
        var keyPath = Path.Combine(_directory, "origin.key");
        var caPath = Path.Combine(_directory, "ca.pem");
        CertificateIssuer.WritePem(origin, certificatePath, keyPath);
        File.WriteAllText(caPath, _ca.ExportCertificatePem());

        var settings = TunnelSettings.Create(new TunnelOptions
        {
            Edges = ["127.0.0.1:7844"],
            Hostnames = ["app.example.com"],
            CertificatePath = certificatePath,
            CertificateKeyPath = keyPath,
            EdgeCaPath = caPath,
        }, TimeProvider.System);

        Assert.Equal([certificatePath, keyPath, caPath], settings.WatchedFiles);

        // A certificate renewed in place, key first: the half-way pair does not load, the finished one does.
        using var renewed = CertificateIssuer.IssueOriginCertificate(_ca, ["app.example.com"], TimeSpan.FromDays(1));
        using (var key = renewed.GetECDsaPrivateKey()!)
        {
            File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        }

        Assert.NotNull(settings.Reload().Problem);
        File.WriteAllText(certificatePath, renewed.ExportCertificatePem());
        Assert.Equal(TunnelCredential.IdOf(renewed), settings.Reload().State?.CredentialId);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Production")]
    [InlineData("Staging")]
    public void Accepting_any_edge_certificate_is_refused_outside_Development(string? environment)
    {
        var error = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = Write(Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com")),
            DangerousAcceptAnyEdgeCertificate = true,
        }, TimeProvider.System, environment));

        Assert.Contains($"Tunnel:DangerousAcceptAnyEdgeCertificate is on in the '{environment ?? "Production"}' environment", error.Message, StringComparison.Ordinal);
        Assert.Contains("allowed only in Development", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepting_any_edge_certificate_in_Development_leaves_the_credentials_pinned_CA_in_force()
    {
        var settings = TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = Write(Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com")),
            DangerousAcceptAnyEdgeCertificate = true,
        }, TimeProvider.System, "Development");

        var dial = settings.Current.DialOptions;
        Assert.True(dial.DangerousAcceptAnyEdgeCertificate);
        Assert.Equal(_ca.Thumbprint, Assert.Single(dial.TrustedEdgeCertificates).Thumbprint);
        Assert.False(dial.AcceptsAnyEdgeCertificate);
    }

    [Fact]
    public void Only_the_second_switch_lets_any_edge_certificate_override_a_pinned_CA()
    {
        var pinned = TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = Write(Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com")),
            DangerousAcceptAnyEdgeCertificate = true,
            DangerousAcceptAnyEdgeCertificateOverridesPinnedCa = true,
        }, TimeProvider.System, "Development");
        Assert.True(pinned.Current.DialOptions.AcceptsAnyEdgeCertificate);

        // Nothing pinned (system roots): the first switch alone applies.
        using var origin = CertificateIssuer.IssueOriginCertificate(_ca, ["app.example.com"], TimeSpan.FromDays(1));
        var unpinned = TunnelSettings.Create(new TunnelOptions
        {
            Edges = ["127.0.0.1:7844"],
            Hostnames = ["app.example.com"],
            Certificate = origin,
            DangerousAcceptAnyEdgeCertificate = true,
        }, TimeProvider.System, "Development");
        Assert.True(unpinned.Current.DialOptions.AcceptsAnyEdgeCertificate);
    }

    [Fact]
    public void The_pinned_CA_override_alone_is_refused_and_outside_Development_too()
    {
        var path = Write(Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com"));
        var alone = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = path,
            DangerousAcceptAnyEdgeCertificateOverridesPinnedCa = true,
        }, TimeProvider.System, "Development"));
        Assert.Contains("Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa is on without Tunnel:DangerousAcceptAnyEdgeCertificate", alone.Message, StringComparison.Ordinal);

        var both = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions
        {
            CredentialPath = path,
            DangerousAcceptAnyEdgeCertificate = true,
            DangerousAcceptAnyEdgeCertificateOverridesPinnedCa = true,
        }, TimeProvider.System, "Production"));
        Assert.Contains("Tunnel:DangerousAcceptAnyEdgeCertificate and Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa are on in the 'Production' environment", both.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_credential_file_or_key_file_others_can_read_is_refused_with_the_fix()
    {
        var credentialPath = Write(Credential(["app.example.com"], ["edge-a.example.com:7844"], "edge.example.com"));
        File.SetUnixFileMode(credentialPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var credential = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions { CredentialPath = credentialPath }, TimeProvider.System));
        Assert.Contains($"The credential file '{credentialPath}' holds a secret but its group or other users may access it (mode 640): run chmod 600 '{credentialPath}'", credential.Message, StringComparison.Ordinal);

        using var origin = CertificateIssuer.IssueOriginCertificate(_ca, ["app.example.com"], TimeSpan.FromDays(1));
        var certificatePath = Path.Combine(_directory, "open.pem");
        var keyPath = Path.Combine(_directory, "open.key");
        CertificateIssuer.WritePem(origin, certificatePath, keyPath);
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var key = Assert.Throws<InvalidOperationException>(() => TunnelSettings.Create(new TunnelOptions
        {
            Edges = ["127.0.0.1:7844"],
            Hostnames = ["app.example.com"],
            CertificatePath = certificatePath,
            CertificateKeyPath = keyPath,
        }, TimeProvider.System));
        Assert.Contains($"The private key file '{keyPath}' holds a secret but its group or other users may access it (mode 604): run chmod 600 '{keyPath}'", key.Message, StringComparison.Ordinal);

        // Owner-only, the same files load.
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.SetUnixFileMode(credentialPath, UnixFileMode.UserRead);
        Assert.NotNull(TunnelSettings.Create(new TunnelOptions { CredentialPath = credentialPath }, TimeProvider.System).Current);
    }

    private TunnelCredential Credential(string[] hostnames, string[] edges, string? edgeServerName)
    {
        using var origin = CertificateIssuer.IssueOriginCertificate(_ca, hostnames.Length > 0 && hostnames.All(h => !h.Contains(' ', StringComparison.Ordinal)) ? hostnames : ["placeholder.example.com"], TimeSpan.FromDays(1));
        return TunnelCredential.FromCertificate(origin, hostnames, _ca.ExportCertificatePem(), edges, edgeServerName);
    }

    private string Write(TunnelCredential credential, string? path = null)
    {
        path ??= Path.Combine(_directory, $"credential-{Guid.NewGuid():N}.json");
        WriteSecret(path, credential.ToJson());
        return path;
    }

    /// <summary>Writes a file only its owner may read, as a credential must be.</summary>
    private static void WriteSecret(string path, string text)
    {
        File.WriteAllText(path, "");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(path, text);
    }
}
