namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>The 61 entries every HPACK context starts with (RFC 7541 Appendix A).</summary>
internal static class HpackStaticTable
{
    public const int Count = 61;

    public const int Authority = 1;
    public const int MethodGet = 2;
    public const int MethodPost = 3;
    public const int PathRoot = 4;
    public const int SchemeHttp = 6;
    public const int SchemeHttps = 7;
    public const int Status200 = 8;
    public const int ContentLength = 28;

    private static readonly (string Name, string Value)[] Entries =
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

    private static readonly byte[][] NameBytes = Array.ConvertAll(Entries, e => System.Text.Encoding.ASCII.GetBytes(e.Name));
    private static readonly byte[][] ValueBytes = Array.ConvertAll(Entries, e => System.Text.Encoding.ASCII.GetBytes(e.Value));

    // Request header names are looked up as the caller spelled them, so no lower-cased copy is made.
    private static readonly Dictionary<string, int> NameIndex = BuildNameIndex();

    /// <summary>The entry's name; <paramref name="index"/> is 1-based as on the wire.</summary>
    public static string Name(int index) => Entries[index - 1].Name;

    public static ReadOnlySpan<byte> NameSpan(int index) => NameBytes[index - 1];

    public static ReadOnlySpan<byte> ValueSpan(int index) => ValueBytes[index - 1];

    /// <summary>The first entry with this name (any case), or 0.</summary>
    public static int FindName(string name) => NameIndex.GetValueOrDefault(name);

    private static Dictionary<string, int> BuildNameIndex()
    {
        var index = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Entries.Length; i++)
        {
            index.TryAdd(Entries[i].Name, i + 1);
        }

        return index;
    }
}
