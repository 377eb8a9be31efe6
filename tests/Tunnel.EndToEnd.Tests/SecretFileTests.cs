using Microsoft.Extensions.Logging;
using Tunnel.Edge;
using Tunnel.Edge.Hosting;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Secrets the edge and the plugin read (keys, the admin token, the etcd password, credential files) are
/// refused when other users may read them, and an etcd password never goes over plain http.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class SecretFileTests
{
    private const UnixFileMode GroupReadable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
    private const UnixFileMode WorldReadable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    [Fact]
    public void An_edge_whose_server_key_or_admin_token_others_can_read_does_not_start_and_says_to_chmod_600()
    {
        using var pki = new TestPki();
        File.SetUnixFileMode(pki.EdgeKeyPath, GroupReadable);
        var key = Assert.Throws<InvalidOperationException>(() => CreateEdge(pki, _ => { }));
        Assert.Contains($"'{pki.EdgeKeyPath}'", key.Message, StringComparison.Ordinal);
        Assert.Contains("mode 640", key.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{pki.EdgeKeyPath}'", key.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(pki.EdgeKeyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var tokenPath = Path.Combine(pki.Directory, "admin.token");
        File.WriteAllText(tokenPath, "a-token-long-enough-to-count\n");
        File.SetUnixFileMode(tokenPath, WorldReadable);
        var token = Assert.Throws<InvalidOperationException>(() => CreateEdge(pki, o => o.AdminTokenPath = tokenPath));
        Assert.Contains($"The admin token file '{tokenPath}'", token.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{tokenPath}'", token.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_edge_refuses_to_log_in_to_etcd_over_plain_http()
    {
        using var pki = new TestPki();
        var error = Assert.Throws<InvalidOperationException>(() => CreateEdge(pki, o =>
        {
            o.Name = "edge-a";
            o.Cluster.PeerAddress = "127.0.0.1";
            o.Cluster.StoreEndpoints = ["https://127.0.0.1:2379", "http://127.0.0.1:2380"];
            o.Cluster.StoreUsername = "root";
            o.Cluster.StorePassword = "correct horse";
        }));

        Assert.Contains("Edge:Cluster:StoreUsername and StorePassword are set, but the etcd endpoint 'http://127.0.0.1:2380' is plain http://", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("correct horse", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_refuses_an_etcd_password_file_others_can_read()
    {
        using var pki = new TestPki();
        var passwordFile = Path.Combine(pki.Directory, "etcd-password");
        File.WriteAllText(passwordFile, "correct horse\n");
        File.SetUnixFileMode(passwordFile, GroupReadable);

        var result = await Cli.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll"), "serve", "--dir", pki.Directory, "--listen", "127.0.0.1",
            "--tunnel-port", "0", "--http-port", "0", "--admin-port", "-1", "--name", "edge-a", "--etcd", "https://127.0.0.1:2379", "--etcd-user", "root", "--etcd-password-file", passwordFile], TimeSpan.FromSeconds(30));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"The etcd password file '{passwordFile}'", result.Stderr, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{passwordFile}'", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_origin_whose_credential_file_others_can_read_does_not_start()
    {
        await using var harness = await TunnelHarness.StartAsync();
        var path = Path.Combine(harness.Pki.Directory, "origin.credential.json");
        TestPki.WriteCredentialAtomically(path, harness.Pki.CreateCredential([TunnelHarness.Hostname], [$"127.0.0.1:{harness.Edge.TunnelEndPoint.Port}"]));
        File.SetUnixFileMode(path, WorldReadable);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => harness.StartBareOriginAsync(tunnel => tunnel.CredentialPath = path));

        Assert.Contains($"The credential file '{path}' holds a secret but its group or other users may access it (mode 644)", error.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{path}'", error.Message, StringComparison.Ordinal);
        Assert.Empty(harness.Edge.Routes.Connections());
    }

    private static EdgeServer CreateEdge(TestPki pki, Action<EdgeOptions> configure)
    {
        var options = new EdgeOptions
        {
            TunnelAddress = "127.0.0.1",
            TunnelPort = 0,
            VisitorAddress = "127.0.0.1",
            VisitorHttpPort = 0,
            AdminPort = 0,
            CaCertificatePath = pki.CaPath,
            ServerCertificatePath = pki.EdgeCertificatePath,
            ServerKeyPath = pki.EdgeKeyPath,
        };
        configure(options);
        return EdgeServer.Create(options, logging => logging.ClearProviders());
    }
}
