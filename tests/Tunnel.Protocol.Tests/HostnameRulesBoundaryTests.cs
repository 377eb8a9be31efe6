namespace Tunnel.Protocol.Tests;

/// <summary>
/// The edges of the hostname rules: the length bounds of a name and of a label, the characters a label
/// may hold, and error messages that are safe to log whatever the peer sent.
/// </summary>
public class HostnameRulesBoundaryTests
{
    [Fact]
    public void A_name_of_exactly_the_longest_DNS_length_is_valid()
    {
        var name = LongName(TunnelLimits.MaxHostnameLength);

        Assert.True(HostnameRules.TryNormalize(name, out var normalized, out var error), error);
        Assert.Equal(name, normalized);
    }

    [Fact]
    public void A_name_one_past_the_longest_DNS_length_is_refused_with_the_bounds()
    {
        var name = LongName(TunnelLimits.MaxHostnameLength + 1);

        Assert.False(HostnameRules.TryNormalize(name, out var normalized, out var error));
        Assert.Null(normalized);
        Assert.EndsWith($"…' is not between 1 and {TunnelLimits.MaxHostnameLength} characters long", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_trailing_dot_does_not_count_toward_the_length()
    {
        var name = LongName(TunnelLimits.MaxHostnameLength);

        Assert.True(HostnameRules.TryNormalize(name + ".", out var normalized, out _));
        Assert.Equal(name, normalized);
    }

    [Theory]
    [InlineData(".")]
    [InlineData(" . ")]
    public void A_name_that_is_only_a_dot_is_refused_as_too_short(string hostname)
    {
        Assert.False(HostnameRules.TryNormalize(hostname, out _, out var error));
        Assert.Equal($"'{hostname}' is not between 1 and {TunnelLimits.MaxHostnameLength} characters long", error);
    }

    [Fact]
    public void Surrounding_whitespace_is_ignored()
    {
        Assert.True(HostnameRules.TryNormalize("  App.Example.com \t", out var normalized, out _));
        Assert.Equal("app.example.com", normalized);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" \t ")]
    public void No_hostname_or_only_whitespace_is_refused_as_empty(string? hostname)
    {
        Assert.False(HostnameRules.TryNormalize(hostname, out _, out var error));
        Assert.Equal("the hostname is empty", error);
    }

    [Fact]
    public void A_label_of_63_characters_is_valid_and_one_of_64_is_not()
    {
        Assert.True(HostnameRules.TryNormalize(new string('a', 63) + ".example.com", out _, out _));

        Assert.False(HostnameRules.TryNormalize(new string('a', 64) + ".example.com", out _, out var error));
        Assert.Equal($"'{new string('a', 64)}.example.com' is not a valid DNS name", error);
    }

    [Theory]
    [InlineData("a.example.com")]
    [InlineData("z.example.com")]
    [InlineData("0.example.com")]
    [InlineData("9.example.com")]
    [InlineData("a-9.example.com")]
    [InlineData("_acme.example.com")]
    [InlineData("xn--bcher-kva.example")]
    public void Letters_digits_inner_hyphens_and_underscores_are_valid(string hostname)
    {
        Assert.True(HostnameRules.TryNormalize(hostname, out var normalized, out var error), error);
        Assert.Equal(hostname, normalized);
    }

    [Theory]
    [InlineData("`.example.com")]
    [InlineData("{.example.com")]
    [InlineData("/.example.com")]
    [InlineData(":.example.com")]
    [InlineData("a-.example.com")]
    [InlineData("app.example-")]
    [InlineData("a*.example.com")]
    public void Other_characters_and_a_label_ending_in_a_hyphen_are_refused(string hostname)
    {
        Assert.False(HostnameRules.TryNormalize(hostname, out _, out var error));
        Assert.Equal($"'{hostname}' is not a valid DNS name", error);
    }

    [Fact]
    public void A_wildcard_over_a_top_level_name_is_refused_saying_so()
    {
        Assert.False(HostnameRules.TryNormalize("*.com", out _, out var error));
        Assert.Equal("'*.com' is a wildcard over a top-level name", error);
    }

    [Fact]
    public void A_wildcard_over_a_two_label_name_is_valid()
    {
        Assert.True(HostnameRules.TryNormalize("*.example.com", out var normalized, out _));
        Assert.Equal("*.example.com", normalized);
    }

    [Fact]
    public void A_bare_star_is_not_a_wildcard()
    {
        Assert.False(HostnameRules.TryNormalize("*", out _, out var error));
        Assert.Equal("'*' is a wildcard over a top-level name", error);
    }

    [Fact]
    public void Control_characters_in_a_refused_name_are_not_echoed_into_the_message()
    {
        Assert.False(HostnameRules.TryNormalize("evil\r\nX-Injected: 1.example.com", out _, out var error));

        Assert.Equal("'evil??X-Injected: 1.example.com' is not a valid DNS name", error);
    }

    [Fact]
    public void A_refused_name_is_shortened_to_80_characters_in_the_message()
    {
        var name = new string('a', 70) + "!" + new string('b', 200) + ".example.com";

        Assert.False(HostnameRules.TryNormalize(name, out _, out var error));

        Assert.Equal($"'{name[..80]}…' is not between 1 and {TunnelLimits.MaxHostnameLength} characters long", error);
    }

    [Fact]
    public void A_refused_name_of_exactly_80_characters_is_quoted_whole()
    {
        var name = new string('a', 67) + "!.example.com";
        Assert.Equal(80, name.Length);

        Assert.False(HostnameRules.TryNormalize(name, out _, out var error));

        Assert.Equal($"'{name}' is not a valid DNS name", error);
    }

    [Theory]
    [InlineData("app.example.com.", "*.example.com")]
    [InlineData("app.example.com", "*.example.com.")]
    [InlineData("app.example.com.", "app.example.com")]
    public void A_trailing_dot_on_either_side_does_not_change_coverage(string hostname, string certificateName)
    {
        Assert.True(HostnameRules.IsCoveredBy(hostname, certificateName));
    }

    [Theory]
    [InlineData("a.example.com", "b.example.com")]
    [InlineData("b.example.com", "a.example.com")]
    public void An_exact_certificate_name_does_not_cover_its_siblings(string hostname, string certificateName)
    {
        Assert.False(HostnameRules.IsCoveredBy(hostname, certificateName));
    }

    [Theory]
    [InlineData(".example.com", "*.example.com")]
    [InlineData("a.example.com", "*example.com")]
    [InlineData("a.example.com", "**.example.com")]
    public void Only_a_star_label_over_a_named_label_is_a_wildcard_match(string hostname, string certificateName)
    {
        Assert.False(HostnameRules.IsCoveredBy(hostname, certificateName));
    }

    [Fact]
    public void Coverage_of_no_name_is_an_argument_error()
    {
        Assert.Throws<ArgumentNullException>(() => HostnameRules.IsCoveredBy(null!, "*.example.com"));
        Assert.Throws<ArgumentNullException>(() => HostnameRules.IsCoveredBy("a.example.com", null!));
        Assert.Throws<ArgumentNullException>(() => HostnameRules.WildcardFor(null!));
    }

    [Theory]
    [InlineData("a.b.example.com", "*.b.example.com")]
    [InlineData(".example.com", null)]
    [InlineData("a.example", null)]
    [InlineData("a.b.c", "*.b.c")]
    public void The_wildcard_for_a_name_replaces_its_first_label(string hostname, string? expected)
    {
        Assert.Equal(expected, HostnameRules.WildcardFor(hostname));
    }

    /// <summary>A valid name of <paramref name="length"/> (254 at most) characters: three 63-character labels and a last one.</summary>
    private static string LongName(int length) =>
        string.Join('.', new string('a', 63), new string('b', 63), new string('c', 63), new string('d', length - (3 * 64)));
}
