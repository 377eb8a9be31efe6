using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Discovery.Dns;

namespace Tunnel.Edge.Dial.Tests.Discovery;

public class DnsMessageTests
{
    internal const ushort Id = 0x1234;
    private const string SrvName = "_tunnel._tcp.example.test";

    // dnsmasq 2.90's answer to "_tunnel._tcp.example.test SRV" (id 0x1234): edge2 (priority 1, weight 5,
    // port 7845) and edge1 (priority 0, weight 10, port 7844), with edge1's A and AAAA and edge2's A in
    // the additional section, names compressed, TTL 2.
    internal static readonly byte[] CapturedSrvAnswer = Convert.FromHexString(
        "123485800001000200000003075f74756e6e656c045f746370076578616d706c6504746573740000210001c00c0021000100000002001a000100051ea5056564676532076578616d706c65047465737400c00c0021000100000002001a0000000a1ea4056564676531076578616d706c65047465737400c063000100010000000200047f000001c063001c000100000002001000000000000000000000000000000001c03d000100010000000200047f000002");

    // dnsmasq 2.90's NXDOMAIN for "nothere.example.test A" (id 0x1234) with --local=/example.test/.
    private static readonly byte[] CapturedNxDomain = Convert.FromHexString(
        "123481830001000000000000076e6f7468657265076578616d706c6504746573740000010001");

    internal static DnsQuery SrvQuery => DnsQuery.Create(SrvName, DnsRecordType.Srv, Id);

    [Fact]
    public void Parses_an_SRV_answer_with_A_and_AAAA_records_in_the_additional_section()
    {
        var response = DnsResponse.Parse(CapturedSrvAnswer, SrvQuery);

        Assert.Equal(DnsResponseCode.NoError, response.ResponseCode);
        Assert.False(response.IsTruncated);
        Assert.Collection(
            response.Answers.Cast<DnsSrvRecord>(),
            r => Assert.Equal(new DnsSrvRecord(SrvName, 2, Priority: 1, Weight: 5, Port: 7845, "edge2.example.test"), r),
            r => Assert.Equal(new DnsSrvRecord(SrvName, 2, Priority: 0, Weight: 10, Port: 7844, "edge1.example.test"), r));
        Assert.Empty(response.Authorities);
        Assert.Equal(
            [
                new DnsAddressRecord("edge1.example.test", 2, IPAddress.Parse("127.0.0.1")),
                new DnsAddressRecord("edge1.example.test", 2, IPAddress.IPv6Loopback),
                new DnsAddressRecord("edge2.example.test", 2, IPAddress.Parse("127.0.0.2")),
            ],
            response.Additionals.Cast<DnsAddressRecord>());
    }

    [Fact]
    public void Follows_compression_pointers_to_earlier_names()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 1);
        var questionAt = w.Position;
        w.Question(SrvName, 33);
        var exampleTestAt = questionAt + "_tunnel".Length + 1 + "_tcp".Length + 1;
        // Owner: the whole question name; target: "edge1" then the question's "example.test".
        w.Pointer(questionAt).RecordFixed(33, 60, 6 + 6 + 2).U16(0).U16(10).U16(7844).Name("edge1", terminate: false).Pointer(exampleTestAt);

        var record = Assert.IsType<DnsSrvRecord>(Assert.Single(DnsResponse.Parse(w.ToArray(), SrvQuery).Answers));

        Assert.Equal(SrvName, record.Name);
        Assert.Equal("edge1.example.test", record.Target);
    }

    public static TheoryData<string> PointerLoops => ["itself", "forward then back", "a label then back to that label"];

    [Theory]
    [MemberData(nameof(PointerLoops))]
    public void Rejects_a_compression_pointer_loop(string shape)
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 2);
        w.Question(SrvName, 33);
        // First record: an unknown type whose data holds the bytes the second record's name jumps into.
        w.Name("x").RecordFixed(type: 99, ttl: 0, dataLength: 4);
        var dataAt = w.Position;
        var ownerAt = dataAt + 4;
        switch (shape)
        {
            case "itself":
                w.Bytes(0, 0, 0, 0).Pointer(ownerAt);
                break;
            case "forward then back":
                w.Pointer(ownerAt).Bytes(0, 0).Pointer(dataAt);
                break;
            default:
                w.Name("a", terminate: false).Pointer(dataAt).Pointer(dataAt);
                break;
        }

        w.RecordFixed(1, 0, 4).Bytes(127, 0, 0, 1);

        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(w.ToArray(), SrvQuery));
        Assert.Contains("answer record 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_a_name_that_pointers_make_longer_than_255_octets()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 2);
        w.Question(SrvName, 33);
        var label = new string('a', 63);
        w.Name("x").RecordFixed(type: 99, ttl: 0, dataLength: 65 + (3 * 66));
        // Four 63-octet labels chained by backward pointers: 4 × 64 + 1 = 257 octets.
        var previous = w.Position;
        w.Name(label);
        for (var i = 0; i < 3; i++)
        {
            var here = w.Position;
            w.Name(label, terminate: false).Pointer(previous);
            previous = here;
        }

        w.Pointer(previous).RecordFixed(1, 0, 4).Bytes(127, 0, 0, 1);

        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(w.ToArray(), SrvQuery));
        Assert.Contains("longer than 255 octets", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_a_name_behind_more_compression_pointers_than_any_name_needs()
    {
        const int chain = 200;
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 2);
        w.Question(SrvName, 33);
        w.Name("x").RecordFixed(type: 99, ttl: 0, dataLength: 1 + (2 * chain));
        var previous = w.Position;
        w.Bytes(0);
        for (var i = 0; i < chain; i++)
        {
            var here = w.Position;
            w.Pointer(previous);
            previous = here;
        }

        w.Pointer(previous).RecordFixed(1, 0, 4).Bytes(127, 0, 0, 1);

        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(w.ToArray(), SrvQuery));
        Assert.Contains("compression pointers", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_truncated_prefix_of_a_valid_answer_throws_DnsFormatException_or_parses()
    {
        var parsed = 0;
        for (var length = 0; length <= CapturedSrvAnswer.Length; length++)
        {
            if (ParseOrFormatError(CapturedSrvAnswer.AsSpan(0, length), SrvQuery) is not null)
            {
                parsed++;
            }
        }

        // Only the whole message holds every record its header counts.
        Assert.Equal(1, parsed);
    }

    [Fact]
    public void Mutated_answers_throw_only_DnsFormatException_quickly_and_with_bounded_allocation()
    {
        var random = new Random(2026);
        var slowest = TimeSpan.Zero;
        long mostAllocated = 0;
        var parsed = 0;
        for (var run = 0; run < 2000; run++)
        {
            var message = Mutate(CapturedSrvAnswer, random);
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var started = Stopwatch.GetTimestamp();
            if (ParseOrFormatError(message, SrvQuery) is not null)
            {
                parsed++;
            }

            slowest = TimeSpan.FromTicks(Math.Max(slowest.Ticks, Stopwatch.GetElapsedTime(started).Ticks));
            mostAllocated = Math.Max(mostAllocated, GC.GetAllocatedBytesForCurrentThread() - allocatedBefore);
        }

        Assert.InRange(slowest, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Assert.InRange(mostAllocated, 0, 1024 * 1024);
        Assert.InRange(parsed, 1, 1999); // some mutations stay well-formed (a changed TTL), most do not
    }

    [Fact]
    public void Random_bytes_behind_a_matching_header_throw_only_DnsFormatException()
    {
        var random = new Random(7);
        for (var run = 0; run < 2000; run++)
        {
            var message = new byte[random.Next(12, 600)];
            random.NextBytes(message);
            BinaryPrimitives.WriteUInt16BigEndian(message, Id);
            // A response, standard query: so that parsing goes past the header.
            message[2] = (byte)(0x80 | (message[2] & 0x07));
            message[4] = 0;
            message[5] = (byte)random.Next(0, 2);
            ParseOrFormatError(message, SrvQuery);
        }
    }

    [Fact]
    public void Rejects_record_counts_the_message_cannot_hold_before_reading_them()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 65535, authorities: 65535, additionals: 65535).Question(SrvName, 33);

        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(w.ToArray(), SrvQuery));
        Assert.Contains("claims 196605 records", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_an_answer_whose_id_is_not_the_query_id()
    {
        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(CapturedSrvAnswer, DnsQuery.Create(SrvName, DnsRecordType.Srv, 0x4321)));
        Assert.Contains("0x1234 does not match the query's id 0x4321", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("_other._tcp.example.test", 33)]
    [InlineData(SrvName, 1)]
    public void Rejects_an_answer_to_another_question(string name, int type)
    {
        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(CapturedSrvAnswer, DnsQuery.Create(name, (DnsRecordType)type, Id)));
        Assert.Contains("answers another question", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Matches_the_question_name_without_regard_to_case()
    {
        var response = DnsResponse.Parse(CapturedSrvAnswer, DnsQuery.Create("_TUNNEL._tcp.Example.TEST", DnsRecordType.Srv, Id));
        Assert.Equal(2, response.Answers.Count);
    }

    [Fact]
    public void Reads_NXDOMAIN_as_a_response_code_with_no_records()
    {
        var response = DnsResponse.Parse(CapturedNxDomain, DnsQuery.Create("nothere.example.test", DnsRecordType.A, Id));

        Assert.Equal(DnsResponseCode.NameError, response.ResponseCode);
        Assert.Empty(response.Answers);
        Assert.Empty(response.Additionals);
    }

    [Fact]
    public void Reads_only_the_header_and_question_of_a_truncated_answer()
    {
        // TC set, cut in the middle of the first answer record, as a server may do (RFC 2181 §9).
        var message = CapturedSrvAnswer[..60];
        message[2] |= 0x02;

        var response = DnsResponse.Parse(message, SrvQuery);

        Assert.True(response.IsTruncated);
        Assert.Empty(response.Answers);
    }

    [Fact]
    public void Rejects_an_address_record_of_the_wrong_length()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 1).Question("edge.example.test", 1);
        w.Pointer(12).RecordFixed(1, 60, 5).Bytes(127, 0, 0, 1, 9);

        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(w.ToArray(), DnsQuery.Create("edge.example.test", DnsRecordType.A, Id)));
        Assert.Contains("5 bytes long; 4 were expected", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_record_data_longer_than_its_contents()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 1).Question("alias.example.test", 5);
        w.Pointer(12).RecordFixed(5, 60, 20).Name("edge.example.test").Bytes(0);

        var error = Assert.Throws<DnsFormatException>(() => DnsResponse.Parse(w.ToArray(), DnsQuery.Create("alias.example.test", DnsRecordType.Cname, Id)));
        Assert.Contains("should be 20 bytes long but its contents take 19", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reads_a_CNAME_and_treats_a_TTL_with_the_top_bit_set_as_zero()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 2).Question("alias.example.test", 1);
        w.Pointer(12).RecordFixed(5, 0x80000000, 7).Name("edge", terminate: false).Pointer(12 + 6);
        w.Name("edge.example.test").RecordFixed(1, 30, 4).Bytes(10, 0, 0, 1);

        var response = DnsResponse.Parse(w.ToArray(), DnsQuery.Create("alias.example.test", DnsRecordType.A, Id));

        Assert.Equal(new DnsCnameRecord("alias.example.test", 0, "edge.example.test"), response.Answers[0]);
        Assert.Equal(new DnsAddressRecord("edge.example.test", 30, IPAddress.Parse("10.0.0.1")), response.Answers[1]);
    }

    [Fact]
    public void Escapes_dots_and_unprintable_bytes_inside_labels()
    {
        var w = new WireBuilder().Header(Id, 0x8180, questions: 1, answers: 1).Question("edge.example.test", 1);
        w.Bytes(3, (byte)'a', (byte)'.', 0x07).Pointer(12).RecordFixed(1, 30, 4).Bytes(10, 0, 0, 1);

        var record = DnsResponse.Parse(w.ToArray(), DnsQuery.Create("edge.example.test", DnsRecordType.A, Id)).Answers[0];

        Assert.Equal(@"a\046\007.edge.example.test", record.Name);
    }

    [Fact]
    public void Builds_a_query_with_a_random_id_recursion_desired_one_question_and_no_OPT_record()
    {
        var query = DnsQuery.Create("_tunnel._tcp.example.test.", DnsRecordType.Srv);
        var bytes = query.Message;

        Assert.Equal("_tunnel._tcp.example.test", query.Name);
        Assert.Equal(query.Id, BinaryPrimitives.ReadUInt16BigEndian(bytes));
        Assert.Equal(
            Convert.FromHexString("0100" + "0001" + "0000" + "0000" + "0000" + "075f74756e6e656c045f746370076578616d706c6504746573740000210001"),
            bytes[2..]);
        var ids = Enumerable.Range(0, 32).Select(_ => DnsQuery.Create("example.test", DnsRecordType.A).Id).Distinct().Count();
        Assert.True(ids > 1, "query ids should be random");
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("a..example.test")]
    [InlineData("exämple.test")]
    [InlineData("a b.example.test")]
    public void Refuses_to_ask_for_what_is_not_a_DNS_name(string name)
    {
        Assert.Throws<ArgumentException>(() => DnsQuery.Create(name, DnsRecordType.A));
    }

    [Fact]
    public void Refuses_to_ask_for_names_with_overlong_labels_or_over_255_octets()
    {
        Assert.Throws<ArgumentException>(() => DnsQuery.Create(new string('a', 64) + ".test", DnsRecordType.A));
        Assert.Throws<ArgumentException>(() => DnsQuery.Create(string.Join('.', Enumerable.Repeat(new string('a', 63), 4)), DnsRecordType.A));
        DnsQuery.Create(string.Join('.', Enumerable.Repeat(new string('a', 63), 3)) + "." + new string('a', 61), DnsRecordType.A);
    }

    /// <summary>Parses, returning null on <see cref="DnsFormatException"/>; any other exception fails the test.</summary>
    private static DnsResponse? ParseOrFormatError(ReadOnlySpan<byte> message, DnsQuery query)
    {
        try
        {
            return DnsResponse.Parse(message, query);
        }
        catch (DnsFormatException ex)
        {
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
            return null;
        }
    }

    private static byte[] Mutate(byte[] original, Random random)
    {
        var bytes = new List<byte>(original);
        var mutations = random.Next(1, 5);
        for (var i = 0; i < mutations; i++)
        {
            // Bytes 0-1 (the id) are left alone so that parsing goes past the id check.
            var at = random.Next(2, bytes.Count);
            switch (random.Next(5))
            {
                case 0:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 1:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 2:
                    bytes.RemoveRange(at, random.Next(1, bytes.Count - at + 1));
                    break;
                case 3:
                    bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 8)).Select(_ => (byte)random.Next(256)));
                    break;
                default:
                    // A compression pointer anywhere.
                    bytes[at] = (byte)(0xC0 | random.Next(0x40));
                    break;
            }

            if (bytes.Count <= 2)
            {
                break;
            }
        }

        return [.. bytes];
    }
}
