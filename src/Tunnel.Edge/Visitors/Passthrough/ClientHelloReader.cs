using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Tunnel.Protocol;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// Reads the server name (SNI, RFC 6066 section 3) from the TLS ClientHello a visitor sends first, so the
/// edge can route the connection before any TLS is done, and leave every byte to be relayed unchanged.
/// </summary>
/// <remarks>
/// Only the record and handshake framing (RFC 8446 sections 5.1 and 4.1.2) and the extension list are
/// read. A ClientHello may be split over several handshake records; their payloads are joined up to
/// <see cref="MaxClientHelloBytes"/>.
/// </remarks>
internal static class ClientHelloReader
{
    /// <summary>The largest ClientHello read (a post-quantum key share makes one about 1.8 KB today).</summary>
    public const int MaxClientHelloBytes = 16 * 1024;

    private const byte HandshakeRecord = 22;
    private const byte ClientHelloType = 1;
    private const int RecordHeaderLength = 5;
    private const int MaxRecordLength = 16 * 1024;
    private const ushort ServerNameExtension = 0;
    private const byte HostNameType = 0;

    /// <summary>Reads as much of the ClientHello as <paramref name="buffer"/> holds.</summary>
    public static SniffResult Read(ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return SniffResult.NeedMore;
        }

        if (buffer.FirstSpan[0] != HandshakeRecord)
        {
            return SniffResult.Other;
        }

        // Enough for the largest ClientHello in a few records; one cut into more pieces than that is refused.
        const int MaxRead = MaxClientHelloBytes + (4 * RecordHeaderLength);
        var bytes = buffer.Length > MaxRead ? buffer.Slice(0, MaxRead) : buffer;
        byte[]? rented = null;
        var span = bytes.IsSingleSegment ? bytes.FirstSpan : (rented = ArrayPool<byte>.Shared.Rent((int)bytes.Length)).AsSpan(0, (int)bytes.Length);
        try
        {
            if (rented is not null)
            {
                bytes.CopyTo(rented);
            }

            var result = ReadRecords(span);
            return result.Status == SniffStatus.NeedMore && buffer.Length > MaxRead
                ? SniffResult.Malformed($"no whole ClientHello in the first {MaxRead} bytes")
                : result;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static SniffResult ReadRecords(ReadOnlySpan<byte> bytes)
    {
        byte[]? joined = null;
        var joinedLength = 0;
        var position = 0;
        while (true)
        {
            if (bytes.Length - position < RecordHeaderLength)
            {
                return SniffResult.NeedMore;
            }

            var header = bytes.Slice(position, RecordHeaderLength);
            if (header[0] != HandshakeRecord)
            {
                return SniffResult.Malformed("a TLS record other than a handshake came before the ClientHello ended");
            }

            if (header[1] != 3)
            {
                return position == 0 ? SniffResult.Other : SniffResult.Malformed("the record version is not TLS");
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(header[3..]);
            if (length is 0 or > MaxRecordLength)
            {
                return SniffResult.Malformed($"a handshake record of {length} bytes");
            }

            if (bytes.Length - position - RecordHeaderLength < length)
            {
                return SniffResult.NeedMore;
            }

            var payload = bytes.Slice(position + RecordHeaderLength, length);
            position += RecordHeaderLength + length;
            if (joined is null && position == RecordHeaderLength + length && HandshakeLength(payload) is { } whole && whole <= payload.Length)
            {
                // The usual case: the whole ClientHello in the first record.
                return ReadHandshake(payload[..whole]);
            }

            joined ??= new byte[MaxClientHelloBytes + 4];
            if (joinedLength + payload.Length > joined.Length)
            {
                return SniffResult.Malformed($"the ClientHello is longer than {MaxClientHelloBytes} bytes");
            }

            payload.CopyTo(joined.AsSpan(joinedLength));
            joinedLength += payload.Length;
            if (HandshakeLength(joined.AsSpan(0, joinedLength)) is { } total && total <= joinedLength)
            {
                return ReadHandshake(joined.AsSpan(0, total));
            }
        }
    }

    /// <returns>The handshake message's whole length (type, length, body), or <c>null</c> if fewer than 4 bytes are known.</returns>
    private static int? HandshakeLength(ReadOnlySpan<byte> handshake) =>
        handshake.Length < 4 ? null : 4 + ((handshake[1] << 16) | (handshake[2] << 8) | handshake[3]);

    private static SniffResult ReadHandshake(ReadOnlySpan<byte> message)
    {
        if (message[0] != ClientHelloType)
        {
            return SniffResult.Malformed("the first handshake message is not a ClientHello");
        }

        if (message.Length > MaxClientHelloBytes + 4)
        {
            return SniffResult.Malformed($"the ClientHello is longer than {MaxClientHelloBytes} bytes");
        }

        var reader = new SpanReader(message[4..]);
        if (!reader.Skip(2 + 32) || !reader.SkipVector(1) || !reader.SkipVector(2) || !reader.SkipVector(1))
        {
            return SniffResult.Malformed("the ClientHello is cut short");
        }

        if (reader.Remaining == 0)
        {
            return SniffResult.Found(null);
        }

        if (!reader.TryVector(2, out var extensions) || reader.Remaining != 0)
        {
            return SniffResult.Malformed("the ClientHello's extensions do not add up");
        }

        return ReadExtensions(extensions);
    }

    private static SniffResult ReadExtensions(ReadOnlySpan<byte> extensions)
    {
        var reader = new SpanReader(extensions);
        while (reader.Remaining > 0)
        {
            if (!reader.TryUInt16(out var type) || !reader.TryVector(2, out var data))
            {
                return SniffResult.Malformed("the ClientHello's extensions do not add up");
            }

            if (type == ServerNameExtension)
            {
                return ReadServerName(data);
            }
        }

        return SniffResult.Found(null);
    }

    private static SniffResult ReadServerName(ReadOnlySpan<byte> data)
    {
        var outer = new SpanReader(data);
        if (!outer.TryVector(2, out var list) || outer.Remaining != 0)
        {
            return SniffResult.Malformed("the server_name extension does not add up");
        }

        var reader = new SpanReader(list);
        while (reader.Remaining > 0)
        {
            if (!reader.TryByte(out var nameType) || !reader.TryVector(2, out var name))
            {
                return SniffResult.Malformed("the server_name list does not add up");
            }

            if (nameType != HostNameType)
            {
                continue;
            }

            var text = Encoding.ASCII.GetString(name);
            if (name.IndexOfAnyExceptInRange((byte)0x21, (byte)0x7E) >= 0 || !HostnameRules.TryNormalize(text, out var host, out _) || host.StartsWith('*'))
            {
                return SniffResult.Malformed("the server name is not a DNS name");
            }

            return SniffResult.Found(host);
        }

        return SniffResult.Found(null);
    }

    /// <summary>A bounds-checked reader of TLS's length-prefixed fields.</summary>
    internal ref struct SpanReader(ReadOnlySpan<byte> span)
    {
        private ReadOnlySpan<byte> _rest = span;

        public readonly int Remaining => _rest.Length;

        public bool Skip(int count)
        {
            if (_rest.Length < count)
            {
                return false;
            }

            _rest = _rest[count..];
            return true;
        }

        public bool TryByte(out byte value)
        {
            value = _rest.Length > 0 ? _rest[0] : default;
            return Skip(1);
        }

        public bool TryUInt16(out ushort value)
        {
            value = _rest.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(_rest) : default;
            return Skip(2);
        }

        public bool TryVector(int lengthBytes, out ReadOnlySpan<byte> vector)
        {
            vector = default;
            if (_rest.Length < lengthBytes)
            {
                return false;
            }

            var length = lengthBytes == 1 ? _rest[0] : BinaryPrimitives.ReadUInt16BigEndian(_rest);
            if (_rest.Length - lengthBytes < length)
            {
                return false;
            }

            vector = _rest.Slice(lengthBytes, length);
            _rest = _rest[(lengthBytes + length)..];
            return true;
        }

        public bool SkipVector(int lengthBytes) => TryVector(lengthBytes, out _);
    }
}
