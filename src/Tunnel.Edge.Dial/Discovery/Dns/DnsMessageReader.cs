using System.Buffers.Binary;
using System.Globalization;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>
/// Reads a DNS message front to back. Every read is bounds-checked and every failure is a
/// <see cref="DnsFormatException"/> saying where; names follow compression pointers only backwards,
/// at most <see cref="DnsWire.MaxCompressionJumps"/> times, and never grow past 255 octets, so a
/// hostile message can neither loop nor make us allocate more than a small multiple of its size.
/// </summary>
internal ref struct DnsMessageReader
{
    // Each wire octet becomes at most four characters ("\DDD"); the dots take the place of length octets.
    private const int MaxNameCharacters = DnsWire.MaxNameOctets * 4;

    private readonly ReadOnlySpan<byte> _message;
    private int _position;

    public DnsMessageReader(ReadOnlySpan<byte> message)
    {
        _message = message;
        _position = 0;
    }

    public readonly int Position => _position;

    public readonly int Remaining => _message.Length - _position;

    public ushort ReadUInt16(string what)
    {
        Require(2, what);
        var value = BinaryPrimitives.ReadUInt16BigEndian(_message[_position..]);
        _position += 2;
        return value;
    }

    public uint ReadUInt32(string what)
    {
        Require(4, what);
        var value = BinaryPrimitives.ReadUInt32BigEndian(_message[_position..]);
        _position += 4;
        return value;
    }

    public ReadOnlySpan<byte> ReadBytes(int count, string what)
    {
        Require(count, what);
        var bytes = _message.Slice(_position, count);
        _position += count;
        return bytes;
    }

    /// <summary>Reads a possibly compressed name and moves past its bytes in place (up to the first pointer).</summary>
    public string ReadName(string what)
    {
        Span<char> text = stackalloc char[MaxNameCharacters];
        var textLength = 0;
        var octets = 0;
        var jumps = 0;
        var position = _position;
        var continueAt = -1;
        while (true)
        {
            if (position >= _message.Length)
            {
                throw new DnsFormatException($"The DNS message ends inside the name of {what} (at offset {position} of {_message.Length}).");
            }

            int length = _message[position];
            switch (length & 0xC0)
            {
                case 0x00 when length == 0:
                    _position = continueAt >= 0 ? continueAt : position + 1;
                    return textLength == 0 ? DnsName.Root : new string(text[..textLength]);

                case 0x00:
                    // This label, its length octet, and the root octet that must still follow.
                    octets += length + 1;
                    if (octets + 1 > DnsWire.MaxNameOctets)
                    {
                        throw new DnsFormatException($"The name of {what} is longer than {DnsWire.MaxNameOctets} octets (at offset {position}).");
                    }

                    if (length > _message.Length - position - 1)
                    {
                        throw new DnsFormatException($"The DNS message ends inside a label of the name of {what} (a {length}-octet label at offset {position} of {_message.Length}).");
                    }

                    if (textLength > 0)
                    {
                        text[textLength++] = '.';
                    }

                    foreach (var b in _message.Slice(position + 1, length))
                    {
                        textLength += AppendEscaped(b, text[textLength..]);
                    }

                    position += 1 + length;
                    break;

                case 0xC0:
                    if (position + 1 >= _message.Length)
                    {
                        throw new DnsFormatException($"The DNS message ends inside a compression pointer in the name of {what} (at offset {position}).");
                    }

                    var target = ((length & 0x3F) << 8) | _message[position + 1];
                    // RFC 1035 §4.1.4: a pointer refers to a prior occurrence. Only backward pointers
                    // are followed, which rules out loops; the jump bound rules out long backward chains.
                    if (target >= position)
                    {
                        throw new DnsFormatException($"The name of {what} has a compression pointer at offset {position} to offset {target}, which is not before it (a loop or a forward reference).");
                    }

                    if (target < DnsWire.HeaderLength)
                    {
                        throw new DnsFormatException($"The name of {what} has a compression pointer at offset {position} into the header (offset {target}).");
                    }

                    if (++jumps > DnsWire.MaxCompressionJumps)
                    {
                        throw new DnsFormatException($"The name of {what} follows more than {DnsWire.MaxCompressionJumps} compression pointers.");
                    }

                    if (continueAt < 0)
                    {
                        continueAt = position + 2;
                    }

                    position = target;
                    break;

                default:
                    throw new DnsFormatException($"The name of {what} has a label of unknown type 0x{length:X2} at offset {position} (only plain labels and compression pointers exist).");
            }
        }
    }

    private readonly void Require(int count, string what)
    {
        if (count > _message.Length - _position)
        {
            throw new DnsFormatException($"The DNS message ends inside {what}: {count} bytes needed at offset {_position}, {_message.Length - _position} left.");
        }
    }

    private static int AppendEscaped(byte b, Span<char> destination)
    {
        if (DnsName.IsPlainLabelCharacter(b))
        {
            destination[0] = (char)b;
            return 1;
        }

        // Presentation form (RFC 1035 §5.1): a dot inside a label, a backslash, or anything unprintable
        // must not read as something else.
        destination[0] = '\\';
        b.TryFormat(destination[1..4], out _, "D3", CultureInfo.InvariantCulture);
        return 4;
    }
}
