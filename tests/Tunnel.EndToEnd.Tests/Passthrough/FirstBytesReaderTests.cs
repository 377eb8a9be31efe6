using System.Buffers;
using System.Text;
using Tunnel.Edge.Visitors.Passthrough;
using Xunit;

namespace Tunnel.EndToEnd.Tests.Passthrough;

/// <summary>
/// The readers that route a visitor's connection by its first bytes, fed what real clients send: the
/// ClientHello's server name, an HTTP/1.1 request's Host and an h2c request's :authority.
/// </summary>
public class FirstBytesReaderTests
{
    private const int MaxHead = 32 * 1024;

    [Fact]
    public async Task Reads_the_server_name_of_a_real_client_hello_and_needs_more_at_every_shorter_prefix()
    {
        var hello = await FirstBytesCapture.ClientHelloAsync("App.Example.com");
        Assert.Equal(new SniffResult(SniffStatus.Found, "app.example.com"), ClientHelloReader.Read(new ReadOnlySequence<byte>(hello)));
        for (var length = 0; length < hello.Length; length++)
        {
            Assert.Equal(SniffStatus.NeedMore, ClientHelloReader.Read(new ReadOnlySequence<byte>(hello, 0, length)).Status);
        }
    }

    [Fact]
    public async Task Reads_a_client_hello_split_over_two_records_and_over_buffer_segments()
    {
        var hello = await FirstBytesCapture.ClientHelloAsync("split.example.com");
        var body = hello.AsSpan(5).ToArray();
        var cut = body.Length / 3;
        var twoRecords = Record(body[..cut]).Concat(Record(body[cut..])).ToArray();
        Assert.Equal("split.example.com", ClientHelloReader.Read(new ReadOnlySequence<byte>(twoRecords)).Host);
        Assert.Equal(SniffStatus.NeedMore, ClientHelloReader.Read(new ReadOnlySequence<byte>(twoRecords, 0, twoRecords.Length - 1)).Status);
        Assert.Equal("split.example.com", ClientHelloReader.Read(Segmented(hello, 7)).Host);
    }

    [Fact]
    public async Task A_client_hello_without_a_server_name_is_found_with_no_host()
    {
        // SslStream sends no SNI for an IP address.
        var hello = await FirstBytesCapture.ClientHelloAsync("127.0.0.1");
        Assert.Equal(new SniffResult(SniffStatus.Found, null), ClientHelloReader.Read(new ReadOnlySequence<byte>(hello)));
    }

    [Fact]
    public void Bytes_that_are_not_tls_are_other_and_broken_tls_is_malformed_with_a_reason()
    {
        Assert.Equal(SniffStatus.Other, ClientHelloReader.Read(Bytes("GET / HTTP/1.1\r\n")).Status);
        Assert.Equal(SniffStatus.Other, ClientHelloReader.Read(new ReadOnlySequence<byte>([22, 9, 9, 0, 5])).Status);

        // A handshake record whose message is not a ClientHello.
        var notHello = Record([2, 0, 0, 1, 0]);
        Assert.Contains("not a ClientHello", ClientHelloReader.Read(new ReadOnlySequence<byte>(notHello)).Reason);

        // A record longer than TLS allows.
        Assert.Equal(SniffStatus.Malformed, ClientHelloReader.Read(new ReadOnlySequence<byte>([22, 3, 1, 0x40, 0x01])).Status);
    }

    [Fact]
    public async Task A_client_hello_whose_lengths_do_not_add_up_is_malformed()
    {
        var hello = await FirstBytesCapture.ClientHelloAsync("app.example.com");

        // Claim one byte more in the extensions' length than the message has.
        var broken = (byte[])hello.Clone();
        var extensionsLength = ExtensionsLengthOffset(broken);
        broken[extensionsLength + 1]++;
        Assert.Equal(SniffStatus.Malformed, ClientHelloReader.Read(new ReadOnlySequence<byte>(broken)).Status);
    }

    [Fact]
    public void A_client_hello_cut_into_tiny_records_past_the_bound_is_refused_not_waited_for()
    {
        // 4 bytes of handshake header claiming 16 KiB, then one-byte records: never a whole ClientHello.
        var records = new List<byte>(Record([1, 0, 0x40, 0x00]));
        for (var i = 0; i < 5000; i++)
        {
            records.AddRange(Record([0]));
        }

        Assert.Equal(SniffStatus.Malformed, ClientHelloReader.Read(new ReadOnlySequence<byte>(records.ToArray())).Status);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: App.Example.com:8080\r\nAccept: */*\r\n\r\n", "app.example.com")]
    [InlineData("POST /x HTTP/1.1\r\nContent-Length: 3\r\nhost:\tapp.example.com\r\n\r\nabc", "app.example.com")]
    [InlineData("GET http://other.example.com/a HTTP/1.1\r\nHost: app.example.com\r\n\r\n", "other.example.com")]
    [InlineData("GET / HTTP/1.0\r\nHost: app.example.com.\r\n\r\n", "app.example.com")]
    public void Reads_the_host_of_an_http1_request_head(string head, string host) =>
        Assert.Equal(new SniffResult(SniffStatus.Found, host, Http2: false), RequestHostReader.Read(Bytes(head), MaxHead));

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n", "two Host headers")]
    [InlineData("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "no Host header")]
    [InlineData("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "an IP literal")]
    [InlineData("GET / HTTP/1.1\r\nHost: a b.example.com\r\n\r\n", "not a DNS name")]
    [InlineData("GET / HTTP/1.1\r\nHost: *.example.com\r\n\r\n", "not a DNS name")]
    public void An_http1_head_without_one_routable_host_is_malformed_with_the_reason(string head, string reason) =>
        Assert.Contains(reason, RequestHostReader.Read(Bytes(head), MaxHead).Reason);

    [Fact]
    public void A_partial_http1_head_needs_more_and_one_past_the_bound_is_malformed()
    {
        const string Head = "GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n";
        for (var length = 1; length < Head.Length; length++)
        {
            Assert.Equal(SniffStatus.NeedMore, RequestHostReader.Read(Bytes(Head[..length]), MaxHead).Status);
        }

        var big = $"GET / HTTP/1.1\r\nX: {new string('a', 100)}\r\nHost: app.example.com\r\n\r\n";
        Assert.Equal(SniffStatus.Found, RequestHostReader.Read(Bytes(big), big.Length).Status);
        Assert.Equal(SniffStatus.Malformed, RequestHostReader.Read(Bytes(big), big.Length - 1).Status);
        Assert.Equal(SniffStatus.Malformed, RequestHostReader.Read(Bytes(big[..^4]), big.Length - 4).Status);
    }

    [Theory]
    [InlineData("\x16\x03\x01")]
    [InlineData("SSH-2.0-OpenSSH_9.2\r\n")]
    [InlineData(" GET / HTTP/1.1\r\n")]
    public void Bytes_that_are_no_http_request_are_other(string start) =>
        Assert.Equal(SniffStatus.Other, RequestHostReader.Read(Bytes(start), MaxHead).Status);

    [Fact]
    public async Task Reads_the_host_of_a_real_http1_client_request()
    {
        var bytes = await FirstBytesCapture.RequestAsync("http://App.Example.com:8080/path", new Version(1, 1));
        Assert.Equal("app.example.com", RequestHostReader.Read(new ReadOnlySequence<byte>(bytes), MaxHead).Host);
    }

    [Fact]
    public async Task Reads_the_authority_of_a_real_h2c_client_and_needs_more_at_every_shorter_prefix()
    {
        var bytes = await FirstBytesCapture.RequestAsync("http://App.Example.com:8080/path", new Version(2, 0));
        Assert.Equal(new SniffResult(SniffStatus.Found, "app.example.com", Http2: true), RequestHostReader.Read(new ReadOnlySequence<byte>(bytes), MaxHead));
        Assert.Equal("app.example.com", RequestHostReader.Read(Segmented(bytes, 5), MaxHead).Host);
        var end = EndOfFirstHeaderBlock(bytes);
        for (var length = 1; length < end; length++)
        {
            Assert.Equal(SniffStatus.NeedMore, RequestHostReader.Read(new ReadOnlySequence<byte>(bytes, 0, length), MaxHead).Status);
        }
    }

    [Fact]
    public void An_h2c_header_block_split_by_continuation_with_padding_and_priority_is_read()
    {
        // :method GET, :scheme http, :path /, :authority a literal "app.example.com".
        var block = new byte[] { 0x82, 0x86, 0x84, 0x41, 15 }.Concat(Encoding.ASCII.GetBytes("app.example.com")).ToArray();
        var headers = new byte[] { 2 /* pad length */, 0, 0, 0, 0, 16 /* priority */ }.Concat(block[..4]).Concat(new byte[2]).ToArray();
        var bytes = Preface()
            .Concat(Frame(0x4, 0, 0, []))
            .Concat(Frame(0x8, 0, 0, [0, 1, 0, 0]))
            .Concat(Frame(0x1, 0x8 | 0x20, 1, headers))
            .Concat(Frame(0x9, 0x4, 1, block[4..]))
            .ToArray();
        Assert.Equal("app.example.com", RequestHostReader.Read(new ReadOnlySequence<byte>(bytes), MaxHead).Host);
    }

    [Fact]
    public void Broken_h2c_first_flights_are_malformed_with_the_reason()
    {
        var block = new byte[] { 0x82, 0x86, 0x84 };
        Assert.Contains("not followed by SETTINGS", Read(Frame(0x1, 0x4, 1, block)));
        Assert.Contains("no :authority", Read(Frame(0x4, 0, 0, []), Frame(0x1, 0x4, 1, block)));
        Assert.Contains("type 0", Read(Frame(0x4, 0, 0, []), Frame(0x0, 0, 1, [1])));
        Assert.Contains("past the default maximum", Read(Frame(0x4, 0, 0, []), Frame(0x1, 0x4, 1, new byte[16385])));
        Assert.Contains("does not decode", Read(Frame(0x4, 0, 0, []), Frame(0x1, 0x4, 1, [0xBF, 0xFF])));
        Assert.Contains("padding", Read(Frame(0x4, 0, 0, []), Frame(0x1, 0x4 | 0x8, 1, [9, 0x82])));

        static string? Read(params byte[][] frames) =>
            RequestHostReader.Read(new ReadOnlySequence<byte>([.. Preface(), .. frames.SelectMany(f => f)]), MaxHead).Reason;
    }

    [Fact]
    public void Endless_continuation_frames_are_refused_at_the_bound()
    {
        var frames = new List<byte>(Preface());
        frames.AddRange(Frame(0x4, 0, 0, []));
        frames.AddRange(Frame(0x1, 0, 1, [0x82]));
        for (var i = 0; i < 100; i++)
        {
            frames.AddRange(Frame(0x9, 0, 1, new byte[1000]));
        }

        Assert.Equal(SniffStatus.Malformed, RequestHostReader.Read(new ReadOnlySequence<byte>(frames.ToArray()), 16 * 1024).Status);
    }

    private static ReadOnlySequence<byte> Bytes(string text) => new(Encoding.Latin1.GetBytes(text));

    private static byte[] Preface() => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private static byte[] Record(byte[] payload) => [22, 3, 1, (byte)(payload.Length >> 8), (byte)payload.Length, .. payload];

    private static byte[] Frame(byte type, byte flags, int stream, byte[] payload) =>
        [(byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, type, flags, (byte)(stream >> 24), (byte)(stream >> 16), (byte)(stream >> 8), (byte)stream, .. payload];

    /// <summary>Where the extensions' 2-byte length sits in a one-record ClientHello.</summary>
    private static int ExtensionsLengthOffset(byte[] hello)
    {
        var position = 5 + 4 + 2 + 32;
        position += 1 + hello[position];
        position += 2 + ((hello[position] << 8) | hello[position + 1]);
        position += 1 + hello[position];
        return position;
    }

    private static int EndOfFirstHeaderBlock(byte[] bytes)
    {
        var position = 24;
        while (true)
        {
            var length = (bytes[position] << 16) | (bytes[position + 1] << 8) | bytes[position + 2];
            var type = bytes[position + 3];
            var flags = bytes[position + 4];
            position += 9 + length;
            if (type is 0x1 or 0x9 && (flags & 0x4) != 0)
            {
                return position;
            }
        }
    }

    /// <summary>The bytes as a sequence of segments of <paramref name="size"/> bytes, as a pipe may hold them.</summary>
    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int size)
    {
        Segment? first = null;
        Segment? last = null;
        for (var offset = 0; offset < bytes.Length; offset += size)
        {
            var memory = bytes.AsMemory(offset, Math.Min(size, bytes.Length - offset));
            last = last is null ? first = new Segment(memory, 0) : last.Append(memory);
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
