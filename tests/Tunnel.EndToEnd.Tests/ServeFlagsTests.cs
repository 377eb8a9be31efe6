using Tunnel.Edge;
using Tunnel.Edge.Commands;

namespace Tunnel.EndToEnd.Tests;

/// <summary>The serve flags' table: each flag lands on its configuration key, over the JSON file.</summary>
public sealed class ServeFlagsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("serve-flags-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Flags_override_the_file_add_to_its_lists_and_replace_the_admin_networks()
    {
        var config = Path.Combine(_directory, "edge.json");
        File.WriteAllText(config, """
            { "Edge": { "Name": "from-file", "TunnelPort": 1, "HttpsRedirectHosts": [ "file.example" ],
                        "Certificates": [ { "CertificatePath": "file.pem" } ], "AdminAllowedNetworks": [ "10.0.0.0/8" ],
                        "Cluster": { "StoreEndpoints": [ "http://file:2379" ], "PeerPort": 2 } } }
            """);

        var options = Build("--config", config, "--name", "from-flag", "--tunnel-port", "7000", "--listen", "127.0.0.2",
            "--redirect-https", "a.example", "--redirect-https", "b.example", "--cert", "site.pem:site.key", "--cert", "both.pem",
            "--admin-allow", "192.168.0.0/16", "--etcd", "http://flag:2379", "--peer-cert", "peer.pem", "--etcd-cert", "etcd.pem:etcd.key",
            "--lease-ttl", "7.5");

        Assert.Equal("from-flag", options.Name);
        Assert.Equal(7000, options.TunnelPort);
        Assert.Equal(("127.0.0.2", "127.0.0.2", "127.0.0.2"), (options.TunnelAddress, options.VisitorAddress, options.Cluster.PeerAddress));
        Assert.Equal(["file.example", "a.example", "b.example"], options.HttpsRedirectHosts);
        Assert.Equal([("file.pem", null), ("site.pem", "site.key"), ("both.pem", null)], options.Certificates.Select(c => (c.CertificatePath, c.KeyPath)));
        Assert.Equal(["192.168.0.0/16"], options.AdminAllowedNetworks);
        Assert.Equal(["http://file:2379", "http://flag:2379"], options.Cluster.StoreEndpoints);
        Assert.Equal(2, options.Cluster.PeerPort);
        Assert.Equal(("peer.pem", "peer.pem"), (options.Cluster.PeerCertificatePath, options.Cluster.PeerKeyPath));
        Assert.Equal(("etcd.pem", "etcd.key"), (options.Cluster.StoreCertificatePath, options.Cluster.StoreKeyPath));
        Assert.Equal(TimeSpan.FromSeconds(7.5), options.Cluster.LeaseTtl);
    }

    [Fact]
    public void Peer_listen_wins_over_listen_and_the_edge_directory_fills_the_unset_paths()
    {
        var options = Build("--peer-listen", "127.0.0.3", "--listen", "127.0.0.2", "--dir", _directory);

        Assert.Equal(new EdgeOptions().Name, options.Name);
        Assert.Equal(["127.0.0.0/8", "::1/128"], options.AdminAllowedNetworks);
        Assert.Equal("127.0.0.3", options.Cluster.PeerAddress);
        Assert.Equal("127.0.0.2", options.VisitorAddress);
        Assert.Equal(Path.Combine(_directory, "edge.pem"), options.ServerCertificatePath);
        Assert.Null(options.AdminTokenPath);
    }

    private static EdgeOptions Build(params string[] args)
    {
        var serve = new ServeCommand();
        var result = serve.Command.Parse(args);
        Assert.Empty(result.Errors);
        return serve.BuildOptions(result);
    }
}
