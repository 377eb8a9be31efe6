namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>The record types this client asks for or reads (RFC 1035, RFC 3596, RFC 2782).</summary>
internal enum DnsRecordType : ushort
{
    A = 1,
    Cname = 5,
    Aaaa = 28,
    Srv = 33,
}

/// <summary>The RCODE of a response header (RFC 1035 §4.1.1).</summary>
internal enum DnsResponseCode
{
    NoError = 0,
    FormatError = 1,
    ServerFailure = 2,
    NameError = 3,
    NotImplemented = 4,
    Refused = 5,
}

/// <summary>Fixed figures of the RFC 1035 wire format.</summary>
internal static class DnsWire
{
    public const int HeaderLength = 12;

    /// <summary>The largest message: TCP frames it with a 16-bit length.</summary>
    public const int MaxMessageLength = ushort.MaxValue;

    public const int MaxLabelLength = 63;

    /// <summary>A name's wire length, length octets and the root included (RFC 1035 §3.1).</summary>
    public const int MaxNameOctets = 255;

    /// <summary>
    /// Compression pointers followed within one name. A name of at most 255 octets has at most 127
    /// labels, so a legitimate name never needs more jumps than this; more can only be a hostile chain.
    /// </summary>
    public const int MaxCompressionJumps = 128;

    /// <summary>The smallest record: a root owner name (1), type, class, TTL and RDLENGTH (10).</summary>
    public const int MinRecordLength = 11;

    public const ushort ClassInternet = 1;

    public const ushort FlagResponse = 0x8000;
    public const ushort FlagTruncated = 0x0200;
    public const ushort FlagRecursionDesired = 0x0100;
    public const int OpcodeShift = 11;
    public const ushort OpcodeMask = 0x7800;
    public const ushort ResponseCodeMask = 0x000F;

    /// <summary>The name of an RCODE as DNS tools print it.</summary>
    public static string Describe(DnsResponseCode code) => code switch
    {
        DnsResponseCode.NoError => "NOERROR",
        DnsResponseCode.FormatError => "FORMERR",
        DnsResponseCode.ServerFailure => "SERVFAIL",
        DnsResponseCode.NameError => "NXDOMAIN",
        DnsResponseCode.NotImplemented => "NOTIMP",
        DnsResponseCode.Refused => "REFUSED",
        _ => "RCODE " + ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The type's mnemonic, for messages.</summary>
    public static string Describe(DnsRecordType type) => type switch
    {
        DnsRecordType.A => "A",
        DnsRecordType.Cname => "CNAME",
        DnsRecordType.Aaaa => "AAAA",
        DnsRecordType.Srv => "SRV",
        _ => "TYPE" + ((int)type).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
