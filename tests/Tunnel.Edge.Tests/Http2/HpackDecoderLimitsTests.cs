using System.Text;
using Tunnel.Edge.Tunnels.Http2;

namespace Tunnel.Edge.Tests.Http2;

/// <summary>
/// The HPACK decoder at its bounds: the string limit (plain and Huffman), the table's exact fit, the
/// integer's largest value, the static table's last entry, and why a malformed block is refused.
/// </summary>
public class HpackDecoderLimitsTests
{
    [Theory]
    [InlineData("0a", 5, 10)]
    [InlineData("1f9a0a", 5, 1337)]
    [InlineData("2a", 8, 42)]
    [InlineData("7e", 7, 126)]
    [InlineData("7f00", 7, 127)]
    [InlineData("7f7f", 7, 254)]
    [InlineData("7f8001", 7, 255)]
    [InlineData("7f80ffffff07", 7, int.MaxValue)]
    public void Integers_decode_as_RFC_7541_section_5_1_encodes_them(string hex, int prefixBits, int expected)
    {
        var bytes = Convert.FromHexString(hex);
        var position = 0;

        Assert.Equal(expected, HpackDecoder.ReadInteger(bytes, ref position, prefixBits));
        Assert.Equal(bytes.Length, position);
    }

    [Theory]
    [InlineData("7f81ffffff07", "A header block holds an integer too large.")]
    [InlineData("7f808080808000", "A header block holds an integer too large.")]
    [InlineData("7f80", "A header block ends inside an integer.")]
    public void An_integer_past_the_largest_int_or_cut_off_is_refused(string hex, string message)
    {
        var bytes = Convert.FromHexString(hex);
        var position = 0;

        Assert.Equal(message, Assert.Throws<HpackException>(() => HpackDecoder.ReadInteger(bytes, ref position, 7)).Message);
    }

    [Fact]
    public void The_prefix_bits_above_the_integer_are_not_part_of_it()
    {
        var bytes = new byte[] { 0xE5 };
        var position = 0;

        Assert.Equal(5, HpackDecoder.ReadInteger(bytes, ref position, 5));
    }

    [Fact]
    public void A_plain_string_of_exactly_the_limit_is_decoded_and_one_byte_more_is_skipped_with_its_length()
    {
        const int Limit = 4096;
        var decoder = new HpackDecoder(maxStringLength: Limit);
        var sink = new Sink();

        decoder.Decode(LiteralWithoutIndexing("x-a", new string('a', Limit), huffman: false), sink);
        decoder.Decode(LiteralWithoutIndexing("x-b", new string('b', Limit + 1), huffman: false), sink);

        Assert.Equal([("x-a", new string('a', Limit))], sink.Fields);
        Assert.Equal([Limit + 1], sink.TooLarge);
    }

    [Fact]
    public void A_Huffman_string_that_decodes_to_exactly_the_limit_is_decoded_and_one_more_is_skipped()
    {
        const int Limit = 4096;
        var decoder = new HpackDecoder(maxStringLength: Limit);
        var sink = new Sink();

        decoder.Decode(LiteralWithoutIndexing("x-a", new string('0', Limit), huffman: true), sink);
        decoder.Decode(LiteralWithoutIndexing("x-b", new string('0', Limit + 1), huffman: true), sink);

        Assert.Equal([("x-a", new string('0', Limit))], sink.Fields);
        Assert.Equal([Limit + 1], sink.TooLarge);
    }

    [Fact]
    public void A_Huffman_string_too_long_to_fit_the_limit_whatever_it_holds_is_skipped_with_the_least_it_decodes_to()
    {
        const int Limit = 4096;
        var decoder = new HpackDecoder(maxStringLength: Limit);
        var sink = new Sink();

        // 16 000 bytes of 30-bit codes at the least: (16 000 - 1) * 8 / 30 = 4266 bytes.
        var length = Integer(16_000);
        length[0] |= 0x80;
        var block = new List<byte> { 0x00, 0x03, (byte)'x', (byte)'-', (byte)'a' };
        block.AddRange(length);
        block.AddRange(new byte[16_000]);
        decoder.Decode(block.ToArray(), sink);

        Assert.Empty(sink.Fields);
        Assert.Equal([4266], sink.TooLarge);
    }

    [Fact]
    public void A_limit_below_the_table_size_is_raised_to_it()
    {
        var decoder = new HpackDecoder(maxAllowedTableSize: 4096, maxStringLength: 10);
        var sink = new Sink();

        decoder.Decode(LiteralWithoutIndexing("x-a", new string('a', 4096), huffman: false), sink);

        Assert.Equal([("x-a", new string('a', 4096))], sink.Fields);
        Assert.Empty(sink.TooLarge);
    }

    [Fact]
    public void A_name_over_the_limit_is_skipped_like_a_value()
    {
        const int Limit = 4096;
        var decoder = new HpackDecoder(maxStringLength: Limit);
        var sink = new Sink();

        decoder.Decode(LiteralWithoutIndexing(new string('n', Limit + 10), "v", huffman: false), sink);
        decoder.Decode(Convert.FromHexString("82"), sink);

        Assert.Equal([Limit + 10], sink.TooLarge);
        Assert.Equal([(":method", "GET")], sink.Fields);
    }

    [Fact]
    public void An_oversized_field_that_is_not_indexed_leaves_the_table_alone()
    {
        const int Limit = 4096;
        var decoder = new HpackDecoder(maxStringLength: Limit);
        var sink = new Sink();
        decoder.Decode(Convert.FromHexString("4001610162"), sink);

        decoder.Decode(LiteralWithoutIndexing("x-b", new string('b', Limit + 1), huffman: false), sink);

        Assert.Equal(1, decoder.TableCount);
        Assert.Equal(34, decoder.TableSize);
    }

    [Fact]
    public void Huffman_strings_of_growing_length_each_decode_whole()
    {
        var decoder = new HpackDecoder();
        var sink = new Sink();
        foreach (var length in new[] { 3, 70, 1000, 5 })
        {
            decoder.Decode(LiteralWithoutIndexing("x-h", new string('e', length), huffman: true), sink);
        }

        Assert.Equal([3, 70, 1000, 5], sink.Fields.Select(f => f.Value.Length));
        Assert.All(sink.Fields, f => Assert.Equal(new string('e', f.Value.Length), f.Value));
    }

    [Fact]
    public void An_entry_of_exactly_the_table_size_is_kept_alone()
    {
        var decoder = new HpackDecoder(64);
        var sink = new Sink();
        decoder.Decode(Convert.FromHexString("4001610162"), sink);

        // 1 + 31 + 32 = 64 bytes.
        decoder.Decode(LiteralWithIndexing("n", new string('v', 31)), sink);

        Assert.Equal(1, decoder.TableCount);
        Assert.Equal(64, decoder.TableSize);
        sink.Fields.Clear();
        decoder.Decode(Convert.FromHexString("be"), sink);
        Assert.Equal([("n", new string('v', 31))], sink.Fields);
    }

    [Fact]
    public void Entries_that_fill_the_table_exactly_are_all_kept_and_the_next_evicts_only_the_oldest()
    {
        // Three entries of 1 + 5 + 32 = 38 bytes fill a 114-byte table exactly.
        var decoder = new HpackDecoder(114);
        var sink = new Sink();
        decoder.Decode(LiteralWithIndexing("a", "11111"), sink);
        decoder.Decode(LiteralWithIndexing("b", "22222"), sink);
        decoder.Decode(LiteralWithIndexing("c", "33333"), sink);
        Assert.Equal(3, decoder.TableCount);
        Assert.Equal(114, decoder.TableSize);

        decoder.Decode(LiteralWithIndexing("d", "44444"), sink);
        Assert.Equal(3, decoder.TableCount);
        Assert.Equal(114, decoder.TableSize);
        sink.Fields.Clear();
        decoder.Decode(Convert.FromHexString("bebfc0"), sink);
        Assert.Equal([("d", "44444"), ("c", "33333"), ("b", "22222")], sink.Fields);
    }

    [Fact]
    public void A_smaller_table_size_evicts_the_oldest_entries_until_the_rest_fit()
    {
        var decoder = new HpackDecoder();
        var sink = new Sink();
        decoder.Decode(LiteralWithIndexing("a", "11111"), sink);
        decoder.Decode(LiteralWithIndexing("b", "22222"), sink);
        decoder.Decode(LiteralWithIndexing("c", "33333"), sink);

        // Size update to 76 (001 11111 + 45): room for the two newest.
        decoder.Decode(Convert.FromHexString("3f2d"), sink);

        Assert.Equal(2, decoder.TableCount);
        Assert.Equal(76, decoder.TableSize);
        sink.Fields.Clear();
        decoder.Decode(Convert.FromHexString("bebf"), sink);
        Assert.Equal([("c", "33333"), ("b", "22222")], sink.Fields);
    }

    [Fact]
    public void Several_size_updates_may_open_a_block()
    {
        var decoder = new HpackDecoder();
        var sink = new Sink();
        decoder.Decode(Convert.FromHexString("4001610162"), sink);

        decoder.Decode(Convert.FromHexString("203fe11f82"), sink);

        Assert.Equal(0, decoder.TableCount);
        Assert.Equal([("a", "b"), (":method", "GET")], sink.Fields);
    }

    [Fact]
    public void The_last_static_entry_is_61_and_the_first_dynamic_one_62()
    {
        var decoder = new HpackDecoder();
        var sink = new Sink();
        decoder.Decode(Convert.FromHexString("4001610162"), new Sink());

        decoder.Decode(Convert.FromHexString("bdbe"), sink);

        Assert.Equal([("www-authenticate", ""), ("a", "b")], sink.Fields);
        Assert.Equal([61, 0], sink.StaticNames);
        Assert.Equal(
            "A header field refers to index 63, beyond the 62 entries.",
            Assert.Throws<HpackException>(() => decoder.Decode(Convert.FromHexString("bf"), sink)).Message);
    }

    [Fact]
    public void A_field_named_by_a_static_index_reports_that_index_and_so_does_its_table_entry()
    {
        var decoder = new HpackDecoder();
        var sink = new Sink();

        // Literal with incremental indexing, name index 31 (content-type), then that entry as 62.
        decoder.Decode(Convert.FromHexString("5f" + "0a" + Hex("text/plain") + "be"), sink);

        Assert.Equal([("content-type", "text/plain"), ("content-type", "text/plain")], sink.Fields);
        Assert.Equal([31, 31], sink.StaticNames);
    }

    [Fact]
    public void A_never_indexed_literal_is_passed_on_and_not_kept()
    {
        var decoder = new HpackDecoder();
        var sink = new Sink();

        decoder.Decode(Convert.FromHexString("1001" + Hex("p") + "01" + Hex("s") + "82"), sink);

        Assert.Equal([("p", "s"), (":method", "GET")], sink.Fields);
        Assert.Equal(0, decoder.TableCount);
    }

    [Theory]
    [InlineData("80", "A header field refers to index 0.")]
    [InlineData("00", "A header block ends before a string.")]
    [InlineData("000161", "A header block ends before a string.")]
    [InlineData("00036162", "A header block ends inside a string.")]
    [InlineData("0001610262", "A header block ends inside a string.")]
    [InlineData("000001", "A header field has an empty name.")]
    [InlineData("8220", "A dynamic table size update follows a header field.")]
    [InlineData("3fe21f", "A dynamic table size update to 4097 exceeds the 4096 advertised.")]
    [InlineData("0081ff", "A Huffman-coded string ends with invalid padding.")]
    [InlineData("0084ffffffff", "A Huffman-coded string contains the EOS symbol.")]
    public void A_malformed_block_is_refused_with_what_is_wrong(string hex, string message)
    {
        var error = Assert.Throws<HpackException>(() => new HpackDecoder().Decode(Convert.FromHexString(hex), new Sink()));

        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void A_block_that_ends_exactly_at_a_strings_end_is_whole()
    {
        var sink = new Sink();
        new HpackDecoder().Decode(Convert.FromHexString("00016101" + Hex("b")), sink);

        Assert.Equal([("a", "b")], sink.Fields);
    }

    [Fact]
    public void Huffman_decoding_stops_when_the_destination_is_full()
    {
        var encoded = HuffmanEncode("hello");
        var destination = new byte[4];

        Assert.False(HuffmanDecoder.TryDecode(encoded, destination, out var written));
        Assert.Equal(4, written);
        Assert.Equal("hell"u8.ToArray(), destination);
        Assert.Throws<HpackException>(() => HuffmanDecoder.Decode(encoded, destination));

        destination = new byte[5];
        Assert.Equal(5, HuffmanDecoder.Decode(encoded, destination));
        Assert.Equal("hello"u8.ToArray(), destination);
    }

    [Fact]
    public void Every_byte_value_survives_a_Huffman_round_trip()
    {
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var encoded = HuffmanEncode(all);
        var destination = new byte[HuffmanDecoder.MaxDecodedLength(encoded.Length)];

        Assert.True(HuffmanDecoder.TryDecode(encoded, destination, out var written));
        Assert.Equal(all, destination[..written]);
    }

    [Theory]
    [InlineData(1, 0, 1)]
    [InlineData(4, 0, 6)]
    [InlineData(5, 1, 8)]
    [InlineData(16, 4, 25)]
    [InlineData(31, 8, 49)]
    public void The_decoded_length_of_a_Huffman_string_lies_between_its_shortest_and_longest_codes(int encoded, int least, int most)
    {
        Assert.Equal(least, HuffmanDecoder.MinDecodedLength(encoded));
        Assert.Equal(most, HuffmanDecoder.MaxDecodedLength(encoded));
    }

    [Fact]
    public void The_static_table_finds_names_in_any_case_and_gives_the_first_entry_of_a_name()
    {
        Assert.Equal(2, HpackStaticTable.FindName(":method"));
        Assert.Equal(8, HpackStaticTable.FindName(":status"));
        Assert.Equal(31, HpackStaticTable.FindName("Content-Type"));
        Assert.Equal(61, HpackStaticTable.FindName("WWW-Authenticate"));
        Assert.Equal(0, HpackStaticTable.FindName("x-unknown"));
        Assert.Equal(":authority", HpackStaticTable.Name(HpackStaticTable.Authority));
        Assert.Equal("www-authenticate", HpackStaticTable.Name(HpackStaticTable.Count));
        Assert.Equal("content-length", HpackStaticTable.Name(HpackStaticTable.ContentLength));
    }

    private static string Hex(string ascii) => Convert.ToHexString(Encoding.ASCII.GetBytes(ascii));

    private static byte[] LiteralWithoutIndexing(string name, string value, bool huffman) => Literal(0x00, name, value, huffman);

    private static byte[] LiteralWithIndexing(string name, string value) => Literal(0x40, name, value, huffman: false);

    private static byte[] Literal(byte first, string name, string value, bool huffman)
    {
        var block = new List<byte> { first };
        block.AddRange(String(Encoding.ASCII.GetBytes(name), huffman: false));
        block.AddRange(String(Encoding.ASCII.GetBytes(value), huffman));
        return [.. block];
    }

    private static byte[] String(byte[] raw, bool huffman)
    {
        var content = huffman ? HuffmanEncode(raw) : raw;
        var length = Integer(content.Length);
        if (huffman)
        {
            length[0] |= 0x80;
        }

        return [.. length, .. content];
    }

    /// <summary>A 7-bit-prefix integer, pattern bits clear.</summary>
    private static byte[] Integer(int value)
    {
        if (value < 0x7F)
        {
            return [(byte)value];
        }

        var bytes = new List<byte> { 0x7F };
        for (value -= 0x7F; value >= 0x80; value >>= 7)
        {
            bytes.Add((byte)((value & 0x7F) | 0x80));
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }

    private static byte[] HuffmanEncode(string ascii) => HuffmanEncode(Encoding.ASCII.GetBytes(ascii));

    /// <summary>RFC 7541 Appendix B's codes, padded with the most significant bits of EOS.</summary>
    private static byte[] HuffmanEncode(byte[] raw)
    {
        var output = new List<byte>();
        ulong bits = 0;
        var count = 0;
        foreach (var b in raw)
        {
            var (code, length) = HuffmanDecoder.Codes[b];
            bits = (bits << length) | code;
            count += length;
            while (count >= 8)
            {
                count -= 8;
                output.Add((byte)(bits >> count));
            }
        }

        if (count > 0)
        {
            output.Add((byte)((bits << (8 - count)) | (0xFFu >> count)));
        }

        return [.. output];
    }

    private sealed class Sink : IHpackHeaderSink
    {
        public List<(string Name, string Value)> Fields { get; } = [];

        public List<int> StaticNames { get; } = [];

        public List<int> TooLarge { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex)
        {
            Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
            StaticNames.Add(staticNameIndex);
        }

        public void OnFieldTooLarge(int atLeastBytes) => TooLarge.Add(atLeastBytes);
    }
}
