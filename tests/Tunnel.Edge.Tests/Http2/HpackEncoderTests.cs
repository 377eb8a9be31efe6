using System.Text;
using Tunnel.Edge.Tunnels.Http2;

namespace Tunnel.Edge.Tests.Http2;

/// <summary>
/// The request side of HPACK: what the encoder writes, byte for byte where RFC 7541 fixes it, what the
/// decoder reads back, and the names and values it refuses to put on the wire.
/// </summary>
public class HpackEncoderTests
{
    [Fact]
    public void Static_entries_and_literals_are_written_as_RFC_7541_lays_them_out()
    {
        using var encoder = new HpackEncoder();
        encoder.WriteIndexed(HpackStaticTable.MethodGet);
        encoder.WriteLiteral(HpackStaticTable.Authority, "www.example.com");
        encoder.WriteLiteral("Custom-Key", "custom-value");

        Assert.Equal(
            "82" + "01" + "0f" + Hex("www.example.com") + "00" + "0a" + Hex("custom-key") + "0c" + Hex("custom-value"),
            Convert.ToHexString(encoder.Written).ToLowerInvariant());
        Assert.Equal(encoder.Written.Length, encoder.Length);
    }

    [Fact]
    public void A_name_the_static_table_knows_is_written_as_its_index_whatever_its_case()
    {
        using var encoder = new HpackEncoder();
        encoder.WriteLiteral("User-Agent", "curl");

        Assert.Equal("0f2b" + "04" + Hex("curl"), Convert.ToHexString(encoder.Written).ToLowerInvariant());
        Assert.Equal([("user-agent", "curl", 58)], Decode(encoder));
    }

    [Fact]
    public void A_pseudo_header_the_static_table_lacks_is_written_out_as_given()
    {
        using var encoder = new HpackEncoder();
        encoder.WritePseudoLiteral(":protocol", "websocket");

        Assert.Equal("00" + "09" + Hex(":protocol") + "09" + Hex("websocket"), Convert.ToHexString(encoder.Written).ToLowerInvariant());
    }

    [Theory]
    [InlineData(0, "00")]
    [InlineData(14, "0e")]
    [InlineData(15, "0f00")]
    [InlineData(16, "0f01")]
    [InlineData(142, "0f7f")]
    [InlineData(143, "0f8001")]
    [InlineData(1306 + 15, "0f9a0a")]
    public void Name_indexes_use_a_4_bit_prefix_and_continue_from_its_maximum(int index, string expected)
    {
        using var encoder = new HpackEncoder();
        encoder.WriteLiteral(index, "");

        Assert.Equal(expected + "00", Convert.ToHexString(encoder.Written).ToLowerInvariant());
    }

    [Theory]
    [InlineData(126)]
    [InlineData(127)]
    [InlineData(128)]
    [InlineData(255)]
    [InlineData(16_511)]
    [InlineData(70_000)]
    public void Names_and_values_of_any_length_read_back_the_same(int length)
    {
        var name = new string('n', length);
        var value = new string('v', length + 1);
        using var encoder = new HpackEncoder(initialSize: 16);
        encoder.WriteIndexed(HpackStaticTable.MethodPost);
        encoder.WriteLiteral(name, value);
        encoder.WriteLiteral(HpackStaticTable.ContentLength, "42");

        Assert.Equal([(":method", "POST", 3), (name, value, 0), ("content-length", "42", 28)], Decode(encoder));
    }

    [Fact]
    public void A_value_of_Latin_1_characters_is_written_as_one_byte_each()
    {
        using var encoder = new HpackEncoder();
        encoder.WriteLiteral("x-name", "caf\u00e9 \u00ff");

        Assert.Equal([("x-name", "caf\u00e9 \u00ff", 0)], Decode(encoder));
        Assert.Equal(1 + 1 + 6 + 1 + 6, encoder.Length);
    }

    [Fact]
    public void Upper_case_names_are_lower_cased_and_everything_else_kept()
    {
        using var encoder = new HpackEncoder();
        encoder.WriteLiteral("X-AZaz09!#$%&'*+-.^_`|~", "v");

        Assert.Equal([("x-azaz09!#$%&'*+-.^_`|~", "v", 0)], Decode(encoder));
    }

    [Theory]
    [InlineData("with space")]
    [InlineData("x:y")]
    [InlineData("tab\t")]
    [InlineData("del\u007f")]
    [InlineData("caf\u00e9")]
    [InlineData("nul\0")]
    public void A_name_no_HTTP_2_field_may_have_is_refused(string name)
    {
        using var encoder = new HpackEncoder();
        var error = Assert.Throws<HttpRequestException>(() => encoder.WriteLiteral(name, "v"));
        Assert.Equal($"The request header name '{name}' is not a valid HTTP/2 field name.", error.Message);
    }

    [Fact]
    public void The_first_and_last_printable_characters_are_valid_in_names()
    {
        using var encoder = new HpackEncoder();
        encoder.WriteLiteral("!~", "v");

        Assert.Equal([("!~", "v", 0)], Decode(encoder));
    }

    [Theory]
    [InlineData("a\rb")]
    [InlineData("a\nb")]
    [InlineData("a\0b")]
    [InlineData("\n")]
    public void A_value_that_could_smuggle_a_field_is_refused_whatever_the_name(string value)
    {
        using var encoder = new HpackEncoder();
        Assert.Equal("A request header value contains CR, LF or NUL.", Assert.Throws<HttpRequestException>(() => encoder.WriteLiteral("x-name", value)).Message);
        Assert.Throws<HttpRequestException>(() => encoder.WriteLiteral(HpackStaticTable.Authority, value));
        Assert.Throws<HttpRequestException>(() => encoder.WritePseudoLiteral(":protocol", value));
    }

    [Fact]
    public void A_block_far_larger_than_the_first_buffer_keeps_every_field_in_order()
    {
        using var encoder = new HpackEncoder(initialSize: 1);
        var expected = new List<(string, string, int)>();
        for (var i = 0; i < 300; i++)
        {
            var value = new string((char)('a' + (i % 26)), i);
            encoder.WriteLiteral($"x-field-{i}", value);
            expected.Add(($"x-field-{i}", value, 0));
        }

        Assert.Equal(expected, Decode(encoder));
    }

    [Fact]
    public void Dispose_empties_the_block()
    {
        var encoder = new HpackEncoder();
        encoder.WriteIndexed(HpackStaticTable.MethodGet);
        encoder.Dispose();

        Assert.Equal(0, encoder.Length);
        Assert.True(encoder.Written.IsEmpty);
        encoder.Dispose();
    }

    private static string Hex(string ascii) => Convert.ToHexString(Encoding.ASCII.GetBytes(ascii)).ToLowerInvariant();

    private static List<(string Name, string Value, int StaticName)> Decode(HpackEncoder encoder)
    {
        var sink = new Sink();
        new HpackDecoder().Decode(encoder.Written, sink);
        return sink.Fields;
    }

    private sealed class Sink : IHpackHeaderSink
    {
        public List<(string, string, int)> Fields { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex) =>
            Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value), staticNameIndex));

        public void OnFieldTooLarge(int atLeastBytes) => throw new InvalidOperationException("no limit was set");
    }
}
