using ARSoft.Tools.Net.Dns;
using Tunnel.Edge.Dns;

namespace Tunnel.Edge.Tests.Dns;

/// <summary>The zones of <c>Edge:Dns</c> as the edge reads them (a unit test of one class: no DNS server needed).</summary>
public sealed class DnsZoneTests : IDisposable
{
    private const string Secret = "W0DfUlw8nsWkNtJq4MdQIq2Us6JxzHo5vol07Vo1VOE=";

    private readonly string _directory = Directory.CreateTempSubdirectory("tunnel-dns-zone-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Reads_the_secret_from_a_tsig_keygen_file_and_publishes_only_what_the_patterns_cover()
    {
        var keyFile = Path.Combine(_directory, "edge.key");
        File.WriteAllText(keyFile, $"key \"edge-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{Secret}\";\n}};\n");
        var errors = new List<string>();
        var zone = Assert.Single(DnsZone.FromOptions(new EdgeDnsOptions
        {
            Zones = [new DnsZoneOptions { Name = "Example.COM.", Server = "192.0.2.1", KeyName = "edge-key", KeySecretPath = keyFile, Target = "edge.example.net", Addresses = ["192.0.2.10"], Patterns = ["*.example.com", "example.com", "*.apps.example.com"] }],
        }, errors));

        Assert.Empty(errors);
        Assert.Equal(Convert.FromBase64String(Secret), zone.Secret);
        Assert.Equal("example.com", zone.Name);
        Assert.Equal(53, zone.Server.Port);
        Assert.Equal(TSigAlgorithm.Sha256, zone.Algorithm);
        Assert.True(zone.Publishes("app.example.com"));
        Assert.True(zone.Publishes("example.com"));
        Assert.True(zone.Publishes("*.apps.example.com"));
        Assert.True(zone.Publishes("web.apps.example.com"));
        Assert.False(zone.Publishes("deep.web.example.com"));
        Assert.False(zone.Publishes("app.example.org"));
        Assert.False(zone.Publishes("*.example.com.evil.test"));
        Assert.True(zone.Contains("_acme-challenge.deep.web.example.com"));
        Assert.False(zone.Contains("notexample.com"));

        Assert.IsType<CNameRecord>(Assert.Single(zone.RecordsFor("app.example.com", 60)));
        Assert.IsType<ARecord>(Assert.Single(zone.RecordsFor("example.com", 60)));
    }

    [Fact]
    public void Names_every_problem_of_a_zone_and_never_the_secret()
    {
        var errors = new List<string>();
        var zones = DnsZone.FromOptions(new EdgeDnsOptions
        {
            Ttl = 0,
            Zones = [new DnsZoneOptions { Name = "example.com", Server = "ns.example.com:53", KeyName = "", KeyAlgorithm = "hmac-md5", KeySecret = "not base64 secret!", Patterns = ["*.example.org", "apex.example.com"] }],
        }, errors);

        Assert.Empty(zones);
        var all = string.Join("\n", errors);
        Assert.Contains("Server 'ns.example.com:53' is not IP or IP:port", all, StringComparison.Ordinal);
        Assert.Contains("KeyAlgorithm 'hmac-md5'", all, StringComparison.Ordinal);
        Assert.Contains("KeyName is required", all, StringComparison.Ordinal);
        Assert.Contains("is not base64", all, StringComparison.Ordinal);
        Assert.Contains("'*.example.org' is outside the zone example.com", all, StringComparison.Ordinal);
        Assert.Contains("need Addresses", all, StringComparison.Ordinal);
        Assert.Contains("Edge:Dns:Ttl", all, StringComparison.Ordinal);
        Assert.DoesNotContain("not base64 secret!", all, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_secret_file_is_named()
    {
        var errors = new List<string>();
        var missing = Path.Combine(_directory, "absent.key");
        DnsZone.FromOptions(new EdgeDnsOptions { Zones = [new DnsZoneOptions { Name = "example.com", Server = "[::1]:5353", KeyName = "k", KeySecretPath = missing, Target = "edge.example.net" }] }, errors);
        Assert.Contains(errors, e => e.Contains(missing, StringComparison.Ordinal));
    }
}
