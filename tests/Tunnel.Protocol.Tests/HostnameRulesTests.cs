namespace Tunnel.Protocol.Tests;

public class HostnameRulesTests
{
    [Theory]
    [InlineData("App.Example.COM.", "app.example.com")]
    [InlineData("*.example.com", "*.example.com")]
    [InlineData("hello.localhost", "hello.localhost")]
    public void Valid_names_are_normalized(string input, string expected)
    {
        Assert.True(HostnameRules.TryNormalize(input, out var normalized, out _));
        Assert.Equal(expected, normalized);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("exa mple.com")]
    [InlineData("-bad.example.com")]
    [InlineData("a..example.com")]
    [InlineData("*.com")]
    [InlineData("a.*.example.com")]
    [InlineData("évil.example.com")]
    public void Invalid_names_are_refused_with_a_reason(string input)
    {
        Assert.False(HostnameRules.TryNormalize(input, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Theory]
    [InlineData("app.example.com", "app.example.com", true)]
    [InlineData("app.example.com", "*.example.com", true)]
    [InlineData("APP.example.com", "*.EXAMPLE.com", true)]
    [InlineData("example.com", "*.example.com", false)]
    [InlineData("a.b.example.com", "*.example.com", false)]
    [InlineData("b.example", "*.a.example", false)]
    [InlineData("a.example.evil", "*.a.example", false)]
    [InlineData("x.a.example.evil", "*.a.example", false)]
    [InlineData("evila.example", "*.a.example", false)]
    [InlineData("*.example.com", "*.example.com", true)]
    [InlineData("*.example.com", "app.example.com", false)]
    public void Certificate_names_cover_exactly_what_TLS_would(string hostname, string certificateName, bool covered)
    {
        Assert.Equal(covered, HostnameRules.IsCoveredBy(hostname, certificateName));
    }

    [Theory]
    [InlineData("a.example.com", "*.example.com")]
    [InlineData("example.com", null)]
    [InlineData("localhost", null)]
    public void Wildcard_for_is_one_label_up(string hostname, string? expected)
    {
        Assert.Equal(expected, HostnameRules.WildcardFor(hostname));
    }
}
