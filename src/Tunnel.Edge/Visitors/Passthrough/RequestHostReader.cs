using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Tunnel.Edge.Tunnels.Http2;
using Tunnel.Protocol;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// Reads the host of a visitor's first HTTP request on a cleartext connection, without taking any byte
/// away: the <c>Host</c> header (or an absolute-form target) of an HTTP/1.1 request head (RFC 9112
/// section 3.2), or the <c>:authority</c> of the first HEADERS after an HTTP/2 preface (RFC 9113
/// section 8.3.1). The edge routes the connection by it and replays the bytes to the origin, whose own
/// server parses them again and answers what is wrong with them; so this reader is strict only where
/// routing depends on it (one host, a valid DNS name) and leaves the rest to that server.
/// </summary>
internal static class RequestHostReader
{
    private const int FrameHeaderLength = 9;
    private const int MaxFrameLength = 16 * 1024;
    private const byte Headers = 0x1;
    private const byte Priority = 0x2;
    private const byte Settings = 0x4;
    private const byte Ping = 0x6;
    private const byte WindowUpdate = 0x8;
    private const byte Continuation = 0x9;
    private const byte EndHeaders = 0x4;
    private const byte Padded = 0x8;
    private const byte PriorityFlag = 0x20;
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    /// <summary>Reads the first request's host from <paramref name="buffer"/>.</summary>
    /// <param name="buffer">The connection's bytes so far.</param>
    /// <param name="maxBytes">How many bytes the request head (or the frames up to the first header block) may take.</param>
    public static SniffResult Read(ReadOnlySequence<byte> buffer, int maxBytes)
    {
        if (buffer.IsEmpty)
        {
            return SniffResult.NeedMore;
        }

        var length = (int)Math.Min(buffer.Length, Preface.Length);
        Span<byte> start = stackalloc byte[length];
        buffer.Slice(0, length).CopyTo(start);
        if (start.SequenceEqual(Preface.AsSpan(0, length)))
        {
            return length < Preface.Length ? SniffResult.NeedMore : ReadHttp2(buffer.Slice(Preface.Length), maxBytes);
        }

        return ReadHttp1(buffer, maxBytes);
    }

    private static SniffResult ReadHttp1(ReadOnlySequence<byte> buffer, int maxBytes)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> head, HeadEnd, advancePastDelimiter: false))
        {
            return buffer.Length >= maxBytes ? SniffResult.Malformed($"no whole request head in {maxBytes} bytes") : LooksLikeHttp1(buffer);
        }

        if (head.Length + HeadEnd.Length > maxBytes)
        {
            return SniffResult.Malformed($"the request head is longer than {maxBytes} bytes");
        }

        var text = Encoding.Latin1.GetString(head);
        var lines = text.Split("\r\n");
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || !requestLine[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            return SniffResult.Other;
        }

        string? host = null;
        for (var i = 1; i < lines.Length; i++)
        {
            var colon = lines[i].IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && lines[i].AsSpan(0, colon).Equals("host", StringComparison.OrdinalIgnoreCase))
            {
                if (host is not null)
                {
                    return SniffResult.Malformed("two Host headers");
                }

                host = lines[i][(colon + 1)..].Trim(' ', '\t');
            }
        }

        var target = requestLine[1];
        if (target.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || target.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            // Absolute form: the target's authority wins over Host (RFC 9112 section 3.2.2).
            var authority = target[(target.IndexOf("//", StringComparison.Ordinal) + 2)..];
            var end = authority.IndexOfAny(['/', '?', '#']);
            host = end < 0 ? authority : authority[..end];
        }

        return host is null ? SniffResult.Malformed("no Host header") : Normalize(host);
    }

    /// <summary>Whether a partial head could still become an HTTP/1.1 request: a method token then a space.</summary>
    private static SniffResult LooksLikeHttp1(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        var count = 0;
        while (reader.TryRead(out var b))
        {
            if (b == ' ')
            {
                return count > 0 ? SniffResult.NeedMore : SniffResult.Other;
            }

            if (b is < (byte)'!' or > (byte)'~' || count++ > 32)
            {
                return SniffResult.Other;
            }
        }

        return SniffResult.NeedMore;
    }

    private static SniffResult ReadHttp2(ReadOnlySequence<byte> frames, int maxBytes)
    {
        var reader = new SequenceReader<byte>(frames);
        Span<byte> header = stackalloc byte[FrameHeaderLength];
        var block = new ArrayBufferWriter<byte>();
        var first = true;
        var started = false;
        while (true)
        {
            if (reader.Consumed > maxBytes)
            {
                return SniffResult.Malformed($"no whole header block in the first {maxBytes} bytes");
            }

            if (!reader.TryCopyTo(header))
            {
                return SniffResult.NeedMore;
            }

            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            var type = header[3];
            var flags = header[4];
            var stream = BinaryPrimitives.ReadUInt32BigEndian(header[5..]) & 0x7FFFFFFF;
            if (length > MaxFrameLength)
            {
                return SniffResult.Malformed($"a frame of {length} bytes, past the default maximum frame size");
            }

            if (reader.Remaining < FrameHeaderLength + length)
            {
                return SniffResult.NeedMore;
            }

            reader.Advance(FrameHeaderLength);
            var payload = reader.UnreadSequence.Slice(0, length);
            reader.Advance(length);
            if (first && type != Settings)
            {
                return SniffResult.Malformed("the HTTP/2 preface is not followed by SETTINGS");
            }

            first = false;
            switch (type)
            {
                case Settings or Ping or WindowUpdate or Priority:
                    continue;
                case Headers when !started && stream % 2 == 1:
                    if (Fragment(payload, flags) is not { } fragment)
                    {
                        return SniffResult.Malformed("a HEADERS frame's padding is longer than the frame");
                    }

                    block.Write(fragment.ToArray());
                    started = true;
                    break;
                case Continuation when started:
                    block.Write(payload.ToArray());
                    break;
                default:
                    return SniffResult.Malformed($"a frame of type {type} before the first request's header block ended");
            }

            if ((flags & EndHeaders) != 0)
            {
                return block.WrittenCount > maxBytes ? SniffResult.Malformed($"the header block is longer than {maxBytes} bytes") : DecodeAuthority(block.WrittenSpan, maxBytes);
            }
        }
    }

    /// <returns>The header block fragment of a HEADERS frame without padding and priority, or <c>null</c> if they do not fit.</returns>
    private static ReadOnlySequence<byte>? Fragment(ReadOnlySequence<byte> payload, byte flags)
    {
        var skipStart = (flags & PriorityFlag) != 0 ? 5 : 0;
        var padding = 0;
        if ((flags & Padded) != 0)
        {
            if (payload.Length < 1)
            {
                return null;
            }

            padding = payload.FirstSpan[0];
            skipStart++;
        }

        return skipStart + padding > payload.Length ? null : payload.Slice(skipStart, payload.Length - skipStart - padding);
    }

    private static SniffResult DecodeAuthority(ReadOnlySpan<byte> block, int maxBytes)
    {
        var sink = new AuthoritySink();
        try
        {
            new HpackDecoder(maxStringLength: maxBytes).Decode(block, sink);
        }
        catch (HpackException ex)
        {
            return SniffResult.Malformed($"the header block does not decode: {ex.Message}");
        }

        if (sink.Problem is { } problem)
        {
            return SniffResult.Malformed(problem);
        }

        return (sink.Authority ?? sink.Host) is { } host ? Normalize(host) with { Http2 = true } : SniffResult.Malformed("no :authority or host field");
    }

    private static SniffResult Normalize(string authority)
    {
        var host = authority;
        if (host.StartsWith('['))
        {
            return SniffResult.Malformed("an IP literal, not a hostname");
        }

        var colon = host.LastIndexOf(':');
        if (colon >= 0)
        {
            host = host[..colon];
        }

        return host.AsSpan().IndexOfAnyExceptInRange('!', '~') < 0 && HostnameRules.TryNormalize(host, out var name, out _) && !name.StartsWith('*')
            ? SniffResult.Found(name)
            : SniffResult.Malformed("the host is not a DNS name");
    }

    private sealed class AuthoritySink : IHpackHeaderSink
    {
        private const int AuthorityIndex = 1;
        private const int HostIndex = 38;

        public string? Authority { get; private set; }

        public string? Host { get; private set; }

        public string? Problem { get; private set; }

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex)
        {
            if (staticNameIndex == AuthorityIndex || name.SequenceEqual(":authority"u8))
            {
                Problem ??= Authority is null ? null : "two :authority fields";
                Authority = Encoding.ASCII.GetString(value);
            }
            else if (staticNameIndex == HostIndex || name.SequenceEqual("host"u8))
            {
                Problem ??= Host is null ? null : "two host fields";
                Host = Encoding.ASCII.GetString(value);
            }
        }

        public void OnFieldTooLarge(int atLeastBytes) => Problem ??= $"a field of at least {atLeastBytes} bytes";
    }
}
