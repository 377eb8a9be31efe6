namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>Receives the fields of one header block as the decoder finds them.</summary>
internal interface IHpackHeaderSink
{
    /// <summary>
    /// One field. The spans are valid only during the call. <paramref name="staticNameIndex"/> is the
    /// static table entry whose name this is, or 0, so known names need not be turned into strings.
    /// </summary>
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex);

    /// <summary>
    /// A field with a name or value longer than the decoder's string limit, at least
    /// <paramref name="atLeastBytes"/> long: it was neither decoded nor copied, only skipped.
    /// </summary>
    void OnFieldTooLarge(int atLeastBytes);
}

/// <summary>
/// The response side of HPACK (RFC 7541): static and dynamic table, size updates, Huffman strings.
/// One per connection, fed every header block in the order they arrive, since blocks change the
/// dynamic table the next ones refer to.
/// </summary>
internal sealed class HpackDecoder
{
    private const int EntryOverhead = 32;

    // The ring starts small and doubles as entries arrive: a tunnel's responses (Kestrel's few
    // headers) fill a handful, and every idle tunnel would otherwise carry the 129 slots a full
    // 4 KiB table could need.
    private const int InitialRingLength = 8;

    private readonly int _maxAllowedTableSize;
    private readonly int _maxStringLength;
    private readonly int _maxRingLength;
    private Entry?[] _ring;
    private int _head;
    private int _count;
    private int _tableSize;
    private int _maxTableSize;
    private byte[] _nameScratch = [];
    private byte[] _valueScratch = [];

    /// <param name="maxAllowedTableSize">The SETTINGS_HEADER_TABLE_SIZE this end advertised.</param>
    /// <param name="maxStringLength">
    /// The longest name or value decoded (the header list limit, say): a longer one, Huffman-coded or
    /// not, is skipped without being decoded or copied and reported through
    /// <see cref="IHpackHeaderSink.OnFieldTooLarge"/>. At least the table size, so that a skipped field
    /// could never have been kept in the table (RFC 7541 section 4.4 empties it instead).
    /// </param>
    public HpackDecoder(int maxAllowedTableSize = 4096, int maxStringLength = int.MaxValue)
    {
        _maxAllowedTableSize = maxAllowedTableSize;
        _maxStringLength = Math.Max(maxStringLength, maxAllowedTableSize);
        _maxTableSize = maxAllowedTableSize;
        _maxRingLength = (maxAllowedTableSize / EntryOverhead) + 1;
        _ring = new Entry[Math.Min(InitialRingLength, _maxRingLength)];
    }

    /// <summary>Bytes the dynamic table holds now (RFC 7541 section 4.1 sizes).</summary>
    public int TableSize => _tableSize;

    /// <summary>Entries in the dynamic table now.</summary>
    public int TableCount => _count;

    /// <summary>Decodes a whole header block (HEADERS plus its CONTINUATIONs).</summary>
    /// <exception cref="HpackException">The block is malformed.</exception>
    public void Decode(ReadOnlySpan<byte> block, IHpackHeaderSink sink)
    {
        var position = 0;
        var fieldSeen = false;
        while (position < block.Length)
        {
            var first = block[position];
            if ((first & 0x80) != 0)
            {
                // Indexed field (section 6.1).
                var index = ReadInteger(block, ref position, 7);
                var staticName = Lookup(index, out var name, out var value);
                sink.OnHeader(name, value, staticName);
                fieldSeen = true;
            }
            else if ((first & 0xC0) == 0x40)
            {
                // Literal with incremental indexing (section 6.2.1).
                var entry = ReadLiteral(block, ref position, 6, sink);
                Add(entry);
                fieldSeen = true;
            }
            else if ((first & 0xE0) == 0x20)
            {
                // Dynamic table size update (section 6.3): only before the block's first field.
                if (fieldSeen)
                {
                    throw new HpackException("A dynamic table size update follows a header field.");
                }

                var size = ReadInteger(block, ref position, 5);
                if (size > _maxAllowedTableSize)
                {
                    throw new HpackException($"A dynamic table size update to {size} exceeds the {_maxAllowedTableSize} advertised.");
                }

                _maxTableSize = size;
                Evict(0);
            }
            else
            {
                // Literal without indexing (0000) or never indexed (0001) (sections 6.2.2, 6.2.3).
                ReadLiteral(block, ref position, 4, sink);
                fieldSeen = true;
            }
        }
    }

    private Entry? ReadLiteral(ReadOnlySpan<byte> block, scoped ref int position, int prefixBits, IHpackHeaderSink sink)
    {
        var indexing = prefixBits == 6;
        var index = ReadInteger(block, ref position, prefixBits);
        ReadOnlySpan<byte> name;
        var staticName = 0;
        var tooLarge = 0;
        if (index == 0)
        {
            name = ReadString(block, ref position, ref _nameScratch, ref tooLarge);
            if (name.Length == 0 && tooLarge == 0)
            {
                throw new HpackException("A header field has an empty name.");
            }
        }
        else
        {
            staticName = Lookup(index, out name, out _);
        }

        var value = ReadString(block, ref position, ref _valueScratch, ref tooLarge);
        if (tooLarge > 0)
        {
            // Longer than the table: indexed, it would empty the table and not be kept (section 4.4).
            sink.OnFieldTooLarge(tooLarge);
            if (indexing)
            {
                Evict(_maxTableSize + 1);
            }

            return null;
        }

        sink.OnHeader(name, value, staticName);
        return indexing ? new Entry(name.ToArray(), value.ToArray(), staticName) : null;
    }

    /// <summary>Entry <paramref name="index"/> of the static or dynamic table; returns its static name index or 0.</summary>
    private int Lookup(int index, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        if (index == 0)
        {
            throw new HpackException("A header field refers to index 0.");
        }

        if (index <= HpackStaticTable.Count)
        {
            name = HpackStaticTable.NameSpan(index);
            value = HpackStaticTable.ValueSpan(index);
            return index;
        }

        var dynamicIndex = index - HpackStaticTable.Count - 1;
        if (dynamicIndex >= _count)
        {
            throw new HpackException($"A header field refers to index {index}, beyond the {HpackStaticTable.Count + _count} entries.");
        }

        var entry = _ring[(_head - 1 - dynamicIndex + (2 * _ring.Length)) % _ring.Length]!;
        name = entry.Name;
        value = entry.Value;
        return entry.StaticName;
    }

    private void Add(Entry? entry)
    {
        if (entry is null)
        {
            return;
        }

        var size = entry.Name.Length + entry.Value.Length + EntryOverhead;
        if (size > _maxTableSize)
        {
            // Section 4.4: an entry larger than the table empties it and is not added.
            Evict(_maxTableSize + 1);
            return;
        }

        Evict(size);
        if (_count == _ring.Length)
        {
            Grow();
        }

        _ring[_head] = entry;
        _head = (_head + 1) % _ring.Length;
        _count++;
        _tableSize += size;
    }

    /// <summary>
    /// Doubles the ring, oldest entry first. A full ring at its largest cannot happen: every entry
    /// takes at least <see cref="EntryOverhead"/> bytes of a table of at most the allowed size.
    /// </summary>
    private void Grow()
    {
        var bigger = new Entry?[Math.Min(_ring.Length * 2, _maxRingLength)];
        var oldest = (_head - _count + _ring.Length) % _ring.Length;
        for (var i = 0; i < _count; i++)
        {
            bigger[i] = _ring[(oldest + i) % _ring.Length];
        }

        _ring = bigger;
        _head = _count % bigger.Length;
    }

    /// <summary>Drops the oldest entries until <paramref name="room"/> more bytes fit.</summary>
    private void Evict(int room)
    {
        while (_count > 0 && _tableSize + room > _maxTableSize)
        {
            var oldest = (_head - _count + _ring.Length) % _ring.Length;
            var entry = _ring[oldest]!;
            _tableSize -= entry.Name.Length + entry.Value.Length + EntryOverhead;
            _ring[oldest] = null;
            _count--;
        }
    }

    /// <summary>An HPACK integer (section 5.1) with an N-bit prefix; at most <see cref="int.MaxValue"/>.</summary>
    internal static int ReadInteger(ReadOnlySpan<byte> block, scoped ref int position, int prefixBits)
    {
        var mask = (1 << prefixBits) - 1;
        var value = block[position++] & mask;
        if (value < mask)
        {
            return value;
        }

        long result = value;
        for (var shift = 0; ; shift += 7)
        {
            if (position >= block.Length)
            {
                throw new HpackException("A header block ends inside an integer.");
            }

            if (shift > 28)
            {
                throw new HpackException("A header block holds an integer too large.");
            }

            var b = block[position++];
            result += (long)(b & 0x7F) << shift;
            if (result > int.MaxValue)
            {
                throw new HpackException("A header block holds an integer too large.");
            }

            if ((b & 0x80) == 0)
            {
                return (int)result;
            }
        }
    }

    /// <summary>
    /// A string literal (section 5.2), Huffman-decoded into <paramref name="scratch"/> if need be. One
    /// longer than the string limit is not decoded: <paramref name="tooLarge"/> gets a length it has at
    /// least (a Huffman code is at most 30 bits a byte) and the result is empty.
    /// </summary>
    private ReadOnlySpan<byte> ReadString(ReadOnlySpan<byte> block, scoped ref int position, ref byte[] scratch, scoped ref int tooLarge)
    {
        if (position >= block.Length)
        {
            throw new HpackException("A header block ends before a string.");
        }

        var huffman = (block[position] & 0x80) != 0;
        var length = ReadInteger(block, ref position, 7);
        if (length > block.Length - position)
        {
            throw new HpackException("A header block ends inside a string.");
        }

        var raw = block.Slice(position, length);
        position += length;
        if (!huffman)
        {
            if (length > _maxStringLength)
            {
                tooLarge = Math.Max(tooLarge, length);
                return default;
            }

            return raw;
        }

        var atLeast = HuffmanDecoder.MinDecodedLength(length);
        if (atLeast > _maxStringLength)
        {
            tooLarge = Math.Max(tooLarge, atLeast);
            return default;
        }

        // Decoded no further than the limit, into a scratch no larger than it.
        var needed = Math.Min(HuffmanDecoder.MaxDecodedLength(length), _maxStringLength);
        if (scratch.Length < needed)
        {
            scratch = new byte[Math.Max(needed, 64)];
        }

        if (!HuffmanDecoder.TryDecode(raw, scratch.AsSpan(0, Math.Min(scratch.Length, _maxStringLength)), out var written))
        {
            tooLarge = Math.Max(tooLarge, _maxStringLength + 1);
            return default;
        }

        return scratch.AsSpan(0, written);
    }

    private sealed class Entry(byte[] name, byte[] value, int staticName)
    {
        public byte[] Name { get; } = name;

        public byte[] Value { get; } = value;

        public int StaticName { get; } = staticName;
    }
}
