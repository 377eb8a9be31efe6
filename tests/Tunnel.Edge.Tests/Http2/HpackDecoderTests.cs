using System.Text;
using Tunnel.Edge.Tunnels.Http2;
using Xunit;

namespace Tunnel.Edge.Tests.Http2;

/// <summary>The HPACK decoder against RFC 7541 Appendix C, and against input it must refuse.</summary>
public class HpackDecoderTests
{
    [Fact]
    public void Huffman_codes_rebuilt_from_the_lengths_match_the_rfc_table()
    {
        // Spot checks against RFC 7541 Appendix B's "code as hex" column.
        Assert.Equal((0x1ff8u, 13), HuffmanDecoder.Codes[0]);
        Assert.Equal((0x7fffd8u, 23), HuffmanDecoder.Codes[1]);
        Assert.Equal((0xffffeau, 24), HuffmanDecoder.Codes[9]);
        Assert.Equal((0x3ffffffcu, 30), HuffmanDecoder.Codes[10]);
        Assert.Equal((0x14u, 6), HuffmanDecoder.Codes[' ']);
        Assert.Equal((0x0u, 5), HuffmanDecoder.Codes['0']);
        Assert.Equal((0x3u, 5), HuffmanDecoder.Codes['a']);
        Assert.Equal((0x7ffcu, 15), HuffmanDecoder.Codes['<']);
        Assert.Equal((0x7ffeu, 15), HuffmanDecoder.Codes['{']);
        Assert.Equal((0x3fffffffu, 30), HuffmanDecoder.Codes[256]);
    }

    [Fact]
    public void Appendix_C2_single_fields()
    {
        Assert.Equal([("custom-key", "custom-header")], DecodeOne("400a637573746f6d2d6b65790d637573746f6d2d686561646572", out var decoder));
        Assert.Equal(55, decoder.TableSize);

        Assert.Equal([(":path", "/sample/path")], DecodeOne("040c2f73616d706c652f70617468", out decoder));
        Assert.Equal(0, decoder.TableCount);

        Assert.Equal([("password", "secret")], DecodeOne("100870617373776f726406736563726574", out decoder));
        Assert.Equal(0, decoder.TableCount);

        Assert.Equal([(":method", "GET")], DecodeOne("82", out decoder));
        Assert.Equal(0, decoder.TableCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Appendix_C3_and_C4_requests(bool huffman)
    {
        var decoder = new HpackDecoder();
        string[] blocks = huffman
            ? ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf", "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
            : ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865", "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"];

        Assert.Equal([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")], Decode(decoder, blocks[0]));
        Assert.Equal(57, decoder.TableSize);

        Assert.Equal([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")], Decode(decoder, blocks[1]));
        Assert.Equal(110, decoder.TableSize);

        Assert.Equal([(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")], Decode(decoder, blocks[2]));
        Assert.Equal(164, decoder.TableSize);
        Assert.Equal(3, decoder.TableCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Appendix_C5_and_C6_responses_evict_from_a_256_byte_table(bool huffman)
    {
        var decoder = new HpackDecoder(256);
        string[] blocks = huffman
            ?
            [
                "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
                "4883640effc1c0bf",
                "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
            ]
            :
            [
                "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                "4803333037c1c0bf",
                "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
            ];

        Assert.Equal([(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")], Decode(decoder, blocks[0]));
        Assert.Equal(222, decoder.TableSize);

        // ":status: 307" takes the place of the evicted ":status: 302".
        Assert.Equal([(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")], Decode(decoder, blocks[1]));
        Assert.Equal(222, decoder.TableSize);
        Assert.Equal(4, decoder.TableCount);

        Assert.Equal(
            [
                (":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"),
                ("content-encoding", "gzip"), ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
            ],
            Decode(decoder, blocks[2]));
        Assert.Equal(215, decoder.TableSize);
        Assert.Equal(3, decoder.TableCount);
    }

    [Fact]
    public void A_size_update_shrinks_the_table_and_one_above_the_advertised_size_is_refused()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, "400a637573746f6d2d6b65790d637573746f6d2d686561646572");
        Assert.Equal(1, decoder.TableCount);

        // Size update to 0 (001 00000) empties it, then back to 4096 (001 11111 + 4065 as 7-bit groups).
        Decode(decoder, "20");
        Assert.Equal(0, decoder.TableCount);
        Decode(decoder, "3fe11f");
        Assert.Throws<HpackException>(() => Decode(decoder, "be"));

        // 4097 is more than was advertised.
        Assert.Throws<HpackException>(() => Decode(decoder, "3fe21f"));
    }

    [Theory]
    [InlineData(1_000_000, true)]
    [InlineData(1_000_000, false)]
    [InlineData(65_536, true)]
    public void A_string_past_the_limit_is_skipped_without_decoding_or_copying_and_the_table_stays_in_step(int length, bool huffman)
    {
        const int Limit = 64 * 1024;
        var decoder = new HpackDecoder(maxStringLength: Limit);
        var collector = new Collector();
        decoder.Decode(Convert.FromHexString("4001610162"), collector);
        Assert.Equal(1, decoder.TableCount);

        // A literal with incremental indexing, name "x", value of `length` bytes ('0' in Huffman, 5 bits
        // each, so 1.6 times as long decoded), then an indexed field that must still decode.
        var block = new List<byte> { 0x40, 0x01, (byte)'x', (byte)((huffman ? 0x80 : 0) | 0x7F) };
        for (var rest = length - 0x7F; ; rest >>= 7)
        {
            if (rest < 0x80)
            {
                block.Add((byte)rest);
                break;
            }

            block.Add((byte)(0x80 | (rest & 0x7F)));
        }

        block.AddRange(huffman ? new byte[length] : Enumerable.Repeat((byte)'v', length));
        block.Add(0x82);
        var bytes = block.ToArray();

        // The Huffman tables are built once per process; not this decode's allocation (alone in a test
        // process, this case can be the first to touch them).
        System.Runtime.CompilerServices.RuntimeHelpers.RunClassConstructor(typeof(HuffmanDecoder).TypeHandle);
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        decoder.Decode(bytes, collector);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        // Never the 1.6 MB a whole decode takes, nor a copy for the table: at most a scratch of the limit.
        Assert.True(allocated < Limit + (16 * 1024), $"{allocated} bytes allocated");
        Assert.True(Assert.Single(collector.TooLarge) > Limit);
        Assert.Equal([("a", "b"), (":method", "GET")], collector.Fields);

        // Indexed, the field would have emptied the table (RFC 7541 section 4.4): so it is emptied.
        Assert.Equal(0, decoder.TableCount);
    }

    [Fact]
    public void An_entry_larger_than_the_table_empties_it()
    {
        var decoder = new HpackDecoder(64);
        Decode(decoder, "4001610162");
        Assert.Equal(1, decoder.TableCount);
        var big = "400161" + "40" + Convert.ToHexString(new byte[64]);
        Decode(decoder, big);
        Assert.Equal(0, decoder.TableCount);
        Assert.Equal(0, decoder.TableSize);
    }

    [Fact]
    public void The_dynamic_table_grows_past_its_first_slots_and_wraps_with_every_entry_in_order()
    {
        // Entries of 3 + 3 + 32 = 38 bytes: 107 fit in 4096. The ring starts with 8 slots.
        var decoder = new HpackDecoder();
        for (var i = 0; i < 100; i++)
        {
            Decode(decoder, "4003" + Convert.ToHexString(Encoding.ASCII.GetBytes($"n{i:00}")) + "03" + Convert.ToHexString(Encoding.ASCII.GetBytes($"v{i:00}")));
        }

        Assert.Equal(100, decoder.TableCount);
        for (var age = 0; age < 100; age++)
        {
            var i = 99 - age;
            Assert.Equal([($"n{i:00}", $"v{i:00}")], Decode(decoder, Indexed(62 + age)));
        }

        // 30 more: the oldest go, the ring wraps, the newest is still index 62.
        for (var i = 100; i < 130; i++)
        {
            Decode(decoder, "4004" + Convert.ToHexString(Encoding.ASCII.GetBytes($"n{i:000}")) + "02" + Convert.ToHexString(Encoding.ASCII.GetBytes($"v{i % 10}")));
        }

        var count = decoder.TableCount;
        Assert.InRange(count, 100, 107);
        Assert.Equal([("n129", "v9")], Decode(decoder, Indexed(62)));
        Assert.Equal([("n100", "v0")], Decode(decoder, Indexed(62 + 29)));
        var oldest = 130 - count;
        Assert.Equal([($"n{oldest:00}", $"v{oldest:00}")], Decode(decoder, Indexed(62 + count - 1)));
        Assert.Throws<HpackException>(() => Decode(decoder, Indexed(62 + count)));
    }

    /// <summary>An indexed field (section 6.1) with the index as a 7-bit-prefix integer.</summary>
    private static string Indexed(int index) =>
        index < 127 ? (0x80 | index).ToString("x2") : "ff" + Convert.ToHexString(Continuation(index - 127));

    private static byte[] Continuation(int value)
    {
        var bytes = new List<byte>();
        while (value >= 128)
        {
            bytes.Add((byte)((value % 128) + 128));
            value /= 128;
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }

    [Theory]
    [InlineData("80", "index 0")]
    [InlineData("c0", "index beyond the tables")]
    [InlineData("ff", "integer cut off")]
    [InlineData("ffffffffffff7f", "integer too large")]
    [InlineData("400a6375", "string cut off")]
    [InlineData("0085f2b24a87", "Huffman padding longer than 7 bits")]
    [InlineData("0081fe", "Huffman padding not all ones")]
    [InlineData("0084ffffffff", "EOS inside a Huffman string")]
    [InlineData("8220", "size update after a field")]
    [InlineData("000001", "empty name")]
    public void Malformed_blocks_throw_the_decoders_own_exception(string hex, string why)
    {
        Assert.NotNull(why);
        Assert.Throws<HpackException>(() => Decode(new HpackDecoder(), hex));
    }

    [Fact]
    public void Random_and_mutated_input_never_hangs_or_throws_anything_else()
    {
        var random = new Random(7541);
        var seeds = new[]
        {
            Convert.FromHexString("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"),
            Convert.FromHexString("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
        };

        var started = DateTime.UtcNow;
        for (var i = 0; i < 50_000; i++)
        {
            byte[] block;
            if (i % 2 == 0)
            {
                block = new byte[random.Next(0, 64)];
                random.NextBytes(block);
            }
            else
            {
                block = (byte[])seeds[i % seeds.Length].Clone();
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    block[random.Next(block.Length)] ^= (byte)(1 << random.Next(8));
                }
            }

            try
            {
                new HpackDecoder().Decode(block, new Collector());
            }
            catch (HpackException)
            {
            }
        }

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromMinutes(1));
    }

    private static List<(string, string)> DecodeOne(string hex, out HpackDecoder decoder)
    {
        decoder = new HpackDecoder();
        return Decode(decoder, hex);
    }

    private static List<(string, string)> Decode(HpackDecoder decoder, string hex)
    {
        var collector = new Collector();
        decoder.Decode(Convert.FromHexString(hex), collector);
        return collector.Fields;
    }

    private sealed class Collector : IHpackHeaderSink
    {
        public List<(string, string)> Fields { get; } = [];

        public List<int> TooLarge { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex) =>
            Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));

        public void OnFieldTooLarge(int atLeastBytes) => TooLarge.Add(atLeastBytes);
    }
}
