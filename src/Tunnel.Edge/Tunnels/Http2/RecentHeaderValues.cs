using System.Text;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// The last value seen for each static-table name (server, content-type, date, cache-control...): an
/// origin sends most of them alike in every response, so the string is made once, not per response.
/// One per connection, used by its reader loop alone (through the stream decoding a block).
/// </summary>
internal sealed class RecentHeaderValues
{
    private readonly string?[] _values = new string?[HpackStaticTable.Count + 1];

    /// <summary>The value as a string: the one seen last for this name if it is the same bytes.</summary>
    public string Get(int staticNameIndex, ReadOnlySpan<byte> value)
    {
        var recent = _values[staticNameIndex];
        if (recent is not null && recent.Length == value.Length && Latin1Equals(recent, value))
        {
            return recent;
        }

        return _values[staticNameIndex] = Encoding.Latin1.GetString(value);
    }

    private static bool Latin1Equals(string text, ReadOnlySpan<byte> bytes)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            if (text[i] != bytes[i])
            {
                return false;
            }
        }

        return true;
    }
}
