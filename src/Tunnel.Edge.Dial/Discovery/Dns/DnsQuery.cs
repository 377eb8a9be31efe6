using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>
/// One question as sent: a random id, RD set, one question of class IN, and no EDNS0 OPT record, so
/// that a server answering over UDP truncates at 512 bytes and sets TC rather than sending large
/// datagrams that may be fragmented or dropped on the way.
/// </summary>
internal sealed class DnsQuery
{
    private DnsQuery(ushort id, string name, DnsRecordType type, byte[] message)
    {
        Id = id;
        Name = name;
        Type = type;
        Message = message;
    }

    public ushort Id { get; }

    /// <summary>The normalized name asked for.</summary>
    public string Name { get; }

    public DnsRecordType Type { get; }

    /// <summary>The wire bytes, without the TCP length prefix.</summary>
    public byte[] Message { get; }

    /// <summary>Builds a query with an unpredictable id, so that an off-path sender cannot easily forge the answer.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a name we can ask for.</exception>
    public static DnsQuery Create(string name, DnsRecordType type) =>
        Create(name, type, (ushort)RandomNumberGenerator.GetInt32(0, ushort.MaxValue + 1));

    /// <summary>Builds a query with a given id (tests replay captured answers with it).</summary>
    public static DnsQuery Create(string name, DnsRecordType type, ushort id)
    {
        if (!DnsName.TryNormalizeQueryName(name, out var normalized, out var error))
        {
            throw new ArgumentException(error, nameof(name));
        }

        var buffer = new byte[DnsWire.HeaderLength + DnsWire.MaxNameOctets + 4];
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(0), id);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(2), DnsWire.FlagRecursionDesired);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(4), 1); // QDCOUNT; AN, NS, AR counts stay 0
        var length = DnsWire.HeaderLength + DnsName.Write(normalized, buffer.AsSpan(DnsWire.HeaderLength));
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(length), (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(length + 2), DnsWire.ClassInternet);
        length += 4;
        return new DnsQuery(id, normalized, type, buffer[..length]);
    }

    public override string ToString() => $"{Name} {DnsWire.Describe(Type)}";
}
