using System.Net;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>A parsed response that answers one <see cref="DnsQuery"/>.</summary>
internal sealed class DnsResponse
{
    private DnsResponse(ushort id, DnsResponseCode responseCode, bool isTruncated, IReadOnlyList<DnsRecord> answers, IReadOnlyList<DnsRecord> authorities, IReadOnlyList<DnsRecord> additionals)
    {
        Id = id;
        ResponseCode = responseCode;
        IsTruncated = isTruncated;
        Answers = answers;
        Authorities = authorities;
        Additionals = additionals;
    }

    public ushort Id { get; }

    public DnsResponseCode ResponseCode { get; }

    /// <summary>TC was set: the records did not fit, and none were read; ask again over TCP.</summary>
    public bool IsTruncated { get; }

    public IReadOnlyList<DnsRecord> Answers { get; }

    public IReadOnlyList<DnsRecord> Authorities { get; }

    public IReadOnlyList<DnsRecord> Additionals { get; }

    /// <summary>
    /// Parses <paramref name="message"/> as the answer to <paramref name="query"/>: same id, a response,
    /// a standard query, and the same question. NXDOMAIN and other RCODEs parse (with their records, if
    /// any); what they mean is the caller's to decide.
    /// </summary>
    /// <exception cref="DnsFormatException">The bytes are not a well-formed answer to this query.</exception>
    public static DnsResponse Parse(ReadOnlySpan<byte> message, DnsQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (message.Length < DnsWire.HeaderLength)
        {
            throw new DnsFormatException($"The DNS message is {message.Length} bytes long, shorter than the {DnsWire.HeaderLength}-byte header.");
        }

        if (message.Length > DnsWire.MaxMessageLength)
        {
            throw new DnsFormatException($"The DNS message is {message.Length} bytes long; at most {DnsWire.MaxMessageLength} are possible.");
        }

        var reader = new DnsMessageReader(message);
        var id = reader.ReadUInt16("the header");
        var flags = reader.ReadUInt16("the header");
        var questionCount = reader.ReadUInt16("the header");
        var answerCount = reader.ReadUInt16("the header");
        var authorityCount = reader.ReadUInt16("the header");
        var additionalCount = reader.ReadUInt16("the header");

        if (id != query.Id)
        {
            throw new DnsFormatException($"The DNS answer's id 0x{id:X4} does not match the query's id 0x{query.Id:X4}.");
        }

        if ((flags & DnsWire.FlagResponse) == 0)
        {
            throw new DnsFormatException("The DNS message is a query, not a response (QR is not set).");
        }

        var opcode = (flags & DnsWire.OpcodeMask) >> DnsWire.OpcodeShift;
        if (opcode != 0)
        {
            throw new DnsFormatException($"The DNS response has opcode {opcode}; a standard query (0) was sent.");
        }

        var responseCode = (DnsResponseCode)(flags & DnsWire.ResponseCodeMask);
        var isTruncated = (flags & DnsWire.FlagTruncated) != 0;

        // Some servers leave the question out of an error response; a successful one must echo it.
        if (questionCount != 1 && !(questionCount == 0 && responseCode != DnsResponseCode.NoError))
        {
            throw new DnsFormatException($"The DNS response has {questionCount} questions; the query asked one.");
        }

        if (questionCount == 1)
        {
            var name = reader.ReadName("the question");
            var type = reader.ReadUInt16("the question");
            var @class = reader.ReadUInt16("the question");
            if (!DnsName.AreEqual(name, query.Name) || type != (ushort)query.Type || @class != DnsWire.ClassInternet)
            {
                throw new DnsFormatException($"The DNS response answers another question ({name} type {type} class {@class}) than the one asked ({query}).");
            }
        }

        if (isTruncated)
        {
            // A truncated answer may end mid-record (RFC 2181 §9); it is only a signal to retry over TCP.
            return new DnsResponse(id, responseCode, isTruncated: true, [], [], []);
        }

        // Every record takes at least 11 bytes, so counts the rest of the message cannot hold are lies;
        // refusing them here also keeps the lists below from being sized by a hostile header.
        var recordCount = answerCount + authorityCount + additionalCount;
        if (recordCount > reader.Remaining / DnsWire.MinRecordLength)
        {
            throw new DnsFormatException($"The DNS response claims {recordCount} records but only {reader.Remaining} bytes follow the question.");
        }

        var answers = ReadSection(ref reader, answerCount, "answer");
        var authorities = ReadSection(ref reader, authorityCount, "authority");
        var additionals = ReadSection(ref reader, additionalCount, "additional");
        return new DnsResponse(id, responseCode, isTruncated: false, answers, authorities, additionals);
    }

    private static DnsRecord[] ReadSection(ref DnsMessageReader reader, int count, string section)
    {
        var records = new DnsRecord[count];
        for (var i = 0; i < count; i++)
        {
            records[i] = ReadRecord(ref reader, section, i + 1);
        }

        return records;
    }

    private static DnsRecord ReadRecord(ref DnsMessageReader reader, string section, int number)
    {
        var what = $"{section} record {number}";
        var name = reader.ReadName(what);
        var type = reader.ReadUInt16(what);
        var @class = reader.ReadUInt16(what);
        var rawTtl = reader.ReadUInt32(what);
        var dataLength = reader.ReadUInt16(what);
        if (dataLength > reader.Remaining)
        {
            throw new DnsFormatException($"The data of {what} is {dataLength} bytes long but only {reader.Remaining} bytes are left in the DNS message.");
        }

        // RFC 2181 §8: a TTL with the top bit set is treated as zero.
        var ttl = rawTtl > int.MaxValue ? 0u : rawTtl;
        var dataStart = reader.Position;
        DnsRecord record = (@class, (DnsRecordType)type) switch
        {
            (DnsWire.ClassInternet, DnsRecordType.A) => ReadAddress(ref reader, name, ttl, dataLength, 4, what),
            (DnsWire.ClassInternet, DnsRecordType.Aaaa) => ReadAddress(ref reader, name, ttl, dataLength, 16, what),
            (DnsWire.ClassInternet, DnsRecordType.Cname) => new DnsCnameRecord(name, ttl, reader.ReadName(what + "'s CNAME target")),
            (DnsWire.ClassInternet, DnsRecordType.Srv) => new DnsSrvRecord(
                name,
                ttl,
                reader.ReadUInt16(what),
                reader.ReadUInt16(what),
                reader.ReadUInt16(what),
                reader.ReadName(what + "'s SRV target")),
            _ => SkipData(ref reader, name, ttl, type, @class, dataLength, what),
        };

        if (reader.Position - dataStart != dataLength)
        {
            throw new DnsFormatException($"The data of {what} ({DnsWire.Describe((DnsRecordType)type)}) should be {dataLength} bytes long but its contents take {reader.Position - dataStart}.");
        }

        return record;
    }

    private static DnsAddressRecord ReadAddress(ref DnsMessageReader reader, string name, uint ttl, int dataLength, int expectedLength, string what)
    {
        if (dataLength != expectedLength)
        {
            throw new DnsFormatException($"The address in {what} is {dataLength} bytes long; {expectedLength} were expected.");
        }

        return new DnsAddressRecord(name, ttl, new IPAddress(reader.ReadBytes(dataLength, what)));
    }

    private static DnsOtherRecord SkipData(ref DnsMessageReader reader, string name, uint ttl, ushort type, ushort @class, int dataLength, string what)
    {
        reader.ReadBytes(dataLength, what);
        return new DnsOtherRecord(name, ttl, type, @class);
    }
}
