using System.Buffers.Binary;

namespace Tunnel.Edge.Dial.Tests.Discovery;

/// <summary>Writes DNS messages byte by byte, for answers no well-behaved server would send.</summary>
internal sealed class WireBuilder
{
    private readonly List<byte> _bytes = [];

    public int Position => _bytes.Count;

    public WireBuilder Header(ushort id, ushort flags, int questions, int answers, int authorities = 0, int additionals = 0) =>
        U16(id).U16(flags).U16(questions).U16(answers).U16(authorities).U16(additionals);

    /// <summary>A name in plain labels, ending with the root unless <paramref name="terminate"/> is false.</summary>
    public WireBuilder Name(string name, bool terminate = true)
    {
        foreach (var label in name.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            _bytes.Add((byte)label.Length);
            _bytes.AddRange(label.Select(c => (byte)c));
        }

        if (terminate)
        {
            _bytes.Add(0);
        }

        return this;
    }

    public WireBuilder Pointer(int offset) => U16(0xC000 | offset);

    public WireBuilder Question(string name, ushort type) => Name(name).U16(type).U16(1);

    /// <summary>The fixed part of a record after its owner name; the data follows.</summary>
    public WireBuilder RecordFixed(ushort type, uint ttl, int dataLength, ushort @class = 1) => U16(type).U16(@class).U32(ttl).U16(dataLength);

    public WireBuilder U16(int value)
    {
        Span<byte> span = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)value);
        _bytes.AddRange(span.ToArray());
        return this;
    }

    public WireBuilder U32(uint value)
    {
        Span<byte> span = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(span, value);
        _bytes.AddRange(span.ToArray());
        return this;
    }

    public WireBuilder Bytes(params byte[] bytes)
    {
        _bytes.AddRange(bytes);
        return this;
    }

    public byte[] ToArray() => [.. _bytes];
}
