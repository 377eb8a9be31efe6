using System.Net;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Discovery.Dns;

namespace Tunnel.Edge.Dial.Tests.Discovery;

public class ResolvConfTests
{
    [Fact]
    public void Reads_the_first_three_nameserver_lines_on_port_53()
    {
        const string text = """
            # generated
            search example.test
            options timeout:1 attempts:3
            nameserver 192.0.2.53
            ; nameserver 192.0.2.99
              nameserver	2001:db8::53
            nameserver not-an-address
            nameserver 192.0.2.54
            nameserver 192.0.2.55
            """;

        Assert.Equal(
            [new IPEndPoint(IPAddress.Parse("192.0.2.53"), 53), new IPEndPoint(IPAddress.Parse("2001:db8::53"), 53), new IPEndPoint(IPAddress.Parse("192.0.2.54"), 53)],
            ResolvConf.Parse(text));
    }

    [Fact]
    public async Task A_resolver_without_servers_names_the_resolv_conf_it_could_not_use()
    {
        var path = Path.Combine(Path.GetTempPath(), $"resolv-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(path, "search example.test\n");
        try
        {
            var resolver = new DnsSrvResolver(new DnsResolverOptions { ResolvConfPath = path });

            var error = await Assert.ThrowsAsync<DnsResolutionException>(() => resolver.ResolveSrvAsync("_tunnel._tcp.example.test", CancellationToken.None));

            Assert.Equal("no_servers", error.ErrorType);
            Assert.Contains(path, error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(31, 2)]
    [InlineData(2, 0)]
    [InlineData(2, 6)]
    public void Refuses_timeouts_and_attempts_out_of_range(int timeoutSeconds, int attempts)
    {
        var options = new DnsResolverOptions { Timeout = TimeSpan.FromSeconds(timeoutSeconds), Attempts = attempts };
        Assert.Throws<ArgumentException>(() => new DnsSrvResolver(options));
    }
}
