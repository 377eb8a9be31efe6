using System.Buffers;
using System.Text;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// Writes a request's header block (RFC 7541): common pseudo-header pairs as static-table indexes,
/// everything else as literals without indexing, with the static table's name index where it has
/// the name. No dynamic table and no Huffman coding: the tunnel is a fast link, and a block that
/// never indexes cannot desynchronise. Names are lower-cased as they are written. The buffer is
/// rented and goes back to the pool on <see cref="Dispose"/>.
/// </summary>
internal sealed class HpackEncoder : IDisposable
{
    private byte[] _buffer;

    public HpackEncoder(int initialSize = 512) => _buffer = ArrayPool<byte>.Shared.Rent(initialSize);

    /// <summary>The block written so far.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

    public int Length { get; private set; }

    /// <summary>A field that is an exact static table entry (section 6.1).</summary>
    public void WriteIndexed(int index) => WriteInteger(0x80, 7, index);

    /// <summary>A literal without indexing whose name is the static table's entry <paramref name="nameIndex"/>.</summary>
    public void WriteLiteral(int nameIndex, string value)
    {
        WriteInteger(0x00, 4, nameIndex);
        WriteValue(value);
    }

    /// <summary>A literal without indexing with its name written out (lower-cased).</summary>
    public void WriteLiteral(string name, string value)
    {
        var staticIndex = HpackStaticTable.FindName(name);
        if (staticIndex != 0)
        {
            WriteLiteral(staticIndex, value);
            return;
        }

        Ensure(1);
        _buffer[Length++] = 0x00;
        WriteInteger(0x00, 7, name.Length);
        Ensure(name.Length);
        var target = _buffer.AsSpan(Length, name.Length);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c > 0x7E || c <= 0x20 || c == ':')
            {
                throw new HttpRequestException($"The request header name '{name}' is not a valid HTTP/2 field name.");
            }

            target[i] = (byte)(c is >= 'A' and <= 'Z' ? c | 0x20 : c);
        }

        Length += name.Length;
        WriteValue(value);
    }

    /// <summary>A literal without indexing whose name is a pseudo-header the static table lacks (<c>:protocol</c>).</summary>
    public void WritePseudoLiteral(string name, string value)
    {
        Ensure(1 + 6 + name.Length);
        _buffer[Length++] = 0x00;
        WriteInteger(0x00, 7, name.Length);
        Length += Encoding.ASCII.GetBytes(name, _buffer.AsSpan(Length));
        WriteValue(value);
    }

    private void WriteValue(string value)
    {
        WriteInteger(0x00, 7, value.Length);
        Ensure(value.Length);
        foreach (var c in value)
        {
            // A field value may not carry CR, LF or NUL (RFC 9113 section 8.2.1): it would smuggle a field.
            if (c is '\r' or '\n' or '\0')
            {
                throw new HttpRequestException("A request header value contains CR, LF or NUL.");
            }
        }

        Length += Encoding.Latin1.GetBytes(value, _buffer.AsSpan(Length));
    }

    /// <summary>An integer with an N-bit prefix (section 5.1) after the pattern bits in <paramref name="pattern"/>.</summary>
    private void WriteInteger(byte pattern, int prefixBits, int value)
    {
        Ensure(6);
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            _buffer[Length++] = (byte)(pattern | value);
            return;
        }

        _buffer[Length++] = (byte)(pattern | max);
        value -= max;
        while (value >= 0x80)
        {
            _buffer[Length++] = (byte)((value & 0x7F) | 0x80);
            value >>= 7;
        }

        _buffer[Length++] = (byte)value;
    }

    private void Ensure(int more)
    {
        if (Length + more <= _buffer.Length)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, Length + more));
        _buffer.AsSpan(0, Length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        Length = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
