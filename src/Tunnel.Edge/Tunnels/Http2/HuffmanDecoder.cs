namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// Decodes HPACK's Huffman-coded string literals (RFC 7541 section 5.2, code in Appendix B). The code
/// is canonical (codes ascend with length, and with the symbol within a length), so it is rebuilt here
/// from the table's "len" column alone, and decoded one bit at a time down a 256-node tree: header
/// values on the tunnel are short, and Kestrel does not Huffman-code its responses at all.
/// </summary>
internal static class HuffmanDecoder
{
    private const int Eos = 256;

    // RFC 7541 Appendix B, the bit length of each symbol's code, symbols 0..255 then EOS.
    private static ReadOnlySpan<byte> CodeLengths =>
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
        30,
    ];

    // Node n's children are at [2n] (bit 0) and [2n + 1] (bit 1): a positive value is the next
    // node, a negative one ~symbol, 0 no code (only the root is node 0, so 0 is never a child).
    private static readonly short[] Tree = BuildTree();

    /// <summary>The canonical code of every symbol, for tests: (code, length).</summary>
    internal static (uint Code, int Length)[] Codes { get; } = BuildCodes();

    /// <summary>Decodes <paramref name="source"/> into <paramref name="destination"/>; returns the length.</summary>
    /// <exception cref="HpackException">Bad padding, EOS in the string, or the destination is too small.</exception>
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination) =>
        TryDecode(source, destination, out var written)
            ? written
            : throw new HpackException("A Huffman-coded string decodes to more than the decoder allows.");

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/>; <c>false</c>, having
    /// stopped there, once the destination is full and more follows.
    /// </summary>
    /// <exception cref="HpackException">Bad padding or EOS in the string.</exception>
    public static bool TryDecode(ReadOnlySpan<byte> source, Span<byte> destination, out int written)
    {
        written = 0;
        var node = 0;
        var bitsSinceSymbol = 0;
        var allOnes = true;
        foreach (var b in source)
        {
            for (var shift = 7; shift >= 0; shift--)
            {
                var bit = (b >> shift) & 1;
                var next = Tree[(node * 2) + bit];
                bitsSinceSymbol++;
                allOnes &= bit == 1;
                if (next < 0)
                {
                    var symbol = ~next;
                    if (symbol == Eos)
                    {
                        throw new HpackException("A Huffman-coded string contains the EOS symbol.");
                    }

                    if (written == destination.Length)
                    {
                        return false;
                    }

                    destination[written++] = (byte)symbol;
                    node = 0;
                    bitsSinceSymbol = 0;
                    allOnes = true;
                }
                else if (next == 0)
                {
                    throw new HpackException("A Huffman-coded string holds a code that is not in the table.");
                }
                else
                {
                    node = next;
                }
            }
        }

        // RFC 7541 section 5.2: padding is the most significant bits of EOS (all ones), shorter than a byte.
        if (bitsSinceSymbol > 7 || !allOnes)
        {
            throw new HpackException("A Huffman-coded string ends with invalid padding.");
        }

        return true;
    }

    /// <summary>The fewest bytes <paramref name="encodedLength"/> bytes decode to (the longest code is 30 bits), less a byte of padding.</summary>
    public static int MinDecodedLength(int encodedLength) => (int)((((long)encodedLength - 1) * 8) / 30);

    /// <summary>The most bytes <paramref name="encodedLength"/> bytes can decode to (the shortest code is 5 bits).</summary>
    public static int MaxDecodedLength(int encodedLength) => (int)(((long)encodedLength * 8) / 5);

    private static (uint Code, int Length)[] BuildCodes()
    {
        var lengths = CodeLengths;
        var codes = new (uint, int)[lengths.Length];
        var order = new int[lengths.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var keys = new int[lengths.Length];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = (lengths[i] << 9) | i;
        }

        Array.Sort(keys, order);
        uint code = 0;
        var previousLength = 0;
        foreach (var symbol in order)
        {
            int length = lengths[symbol];
            code <<= length - previousLength;
            codes[symbol] = (code, length);
            code++;
            previousLength = length;
        }

        return codes;
    }

    private static short[] BuildTree()
    {
        var tree = new short[2 * 512];
        short nodes = 1;
        foreach (var (symbol, (code, length)) in BuildCodes().Index())
        {
            var node = 0;
            for (var bitIndex = length - 1; bitIndex >= 0; bitIndex--)
            {
                var slot = (node * 2) + (int)((code >> bitIndex) & 1);
                if (bitIndex == 0)
                {
                    tree[slot] = (short)~symbol;
                }
                else
                {
                    if (tree[slot] == 0)
                    {
                        tree[slot] = nodes++;
                    }

                    node = tree[slot];
                }
            }
        }

        return tree;
    }
}
