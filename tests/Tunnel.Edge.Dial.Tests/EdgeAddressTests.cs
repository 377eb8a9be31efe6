using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests;

public class EdgeAddressTests
{
    [Theory]
    [InlineData("edge.example.com", "edge.example.com", 7844)]
    [InlineData("edge.example.com:9000", "edge.example.com", 9000)]
    [InlineData("127.0.0.1:7000", "127.0.0.1", 7000)]
    [InlineData("[::1]:7001", "::1", 7001)]
    [InlineData("[::1]", "::1", 7844)]
    [InlineData("::1", "::1", 7844)]
    public void Parses_hosts_and_ports(string text, string host, int port)
    {
        var address = EdgeAddress.Parse(text);
        Assert.Equal(host, address.Host);
        Assert.Equal(port, address.Port);
    }

    [Theory]
    [InlineData("")]
    [InlineData("host:")]
    [InlineData("host:0")]
    [InlineData("host:70000")]
    [InlineData("host:http")]
    [InlineData("[::1")]
    [InlineData("[::1]x")]
    [InlineData(":7844")]
    public void Refuses_malformed_addresses_with_a_reason(string text)
    {
        Assert.False(EdgeAddress.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }
}
