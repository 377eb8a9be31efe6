using System.Text;
using Tunnel.Edge.Tunnels.Http2;
using Xunit;

namespace Tunnel.Edge.Tests.Http2;

/// <summary>
/// The static table against RFC 7541 Appendix A, entry by entry: a wrong name or value would make the
/// edge read a response header as another (an indexed <c>:status 404</c> as 400, say).
/// </summary>
public class HpackStaticTableTests
{
    // RFC 7541 Appendix A, typed from the RFC (not from the code under test).
    private static readonly (string Name, string Value)[] Rfc7541 =
    [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""),
        ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""),
        ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""),
        ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ];

    public static TheoryData<int> Indexes() => [.. Enumerable.Range(1, 61)];

    [Theory]
    [MemberData(nameof(Indexes))]
    public void Each_indexed_field_decodes_to_the_rfc_entry(int index)
    {
        var (name, value) = Rfc7541[index - 1];
        var sink = new Collector();
        new HpackDecoder().Decode([(byte)(0x80 | index)], sink);
        var field = Assert.Single(sink.Fields);
        Assert.Equal((name, value), (field.Name, field.Value));
        Assert.Equal(name, Rfc7541[field.StaticIndex - 1].Name);

        Assert.Equal(name, HpackStaticTable.Name(index));
        Assert.Equal(name, Encoding.ASCII.GetString(HpackStaticTable.NameSpan(index)));
        Assert.Equal(value, Encoding.ASCII.GetString(HpackStaticTable.ValueSpan(index)));
        Assert.Equal(name, Rfc7541[HpackStaticTable.FindName(name) - 1].Name);
    }

    [Fact]
    public void The_table_has_61_entries_and_index_62_is_the_dynamic_table()
    {
        Assert.Equal(61, HpackStaticTable.Count);
        Assert.Throws<HpackException>(() => new HpackDecoder().Decode([0x80 | 62], new Collector()));
        Assert.Equal(0, HpackStaticTable.FindName("x-not-in-the-table"));
    }

    private sealed class Collector : IHpackHeaderSink
    {
        public List<(string Name, string Value, int StaticIndex)> Fields { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex) =>
            Fields.Add((Encoding.ASCII.GetString(name), Encoding.ASCII.GetString(value), staticNameIndex));

        public void OnFieldTooLarge(int atLeastBytes) => throw new InvalidOperationException("no field is that large here");
    }
}
