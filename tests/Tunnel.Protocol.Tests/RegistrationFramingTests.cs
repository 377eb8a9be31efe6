using System.Buffers.Binary;
using System.Text;
using Tunnel.Protocol.Registration;
using static Tunnel.Protocol.Tests.RegistrationFrames;

namespace Tunnel.Protocol.Tests;

/// <summary>
/// The frame around the document: its layout on the wire, its size bound on both ends, and what a
/// reader says when the frame is wrong or cut short.
/// </summary>
public class RegistrationFramingTests
{
    private static readonly RegistrationRequest Request = new() { ConnectorId = "c", Hostnames = ["a.example.com"] };

    [Fact]
    public void A_request_frame_is_magic_type_1_big_endian_length_then_the_json_document()
    {
        var frame = RegistrationCodec.EncodeRequest(Request);

        Assert.Equal("TUN1"u8.ToArray(), frame[..4]);
        Assert.Equal(1, frame[4]);
        Assert.Equal(frame.Length - RegistrationCodec.HeaderLength, BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(5)));
        Assert.StartsWith("{\"version\":1,\"connectorId\":\"c\"", Encoding.UTF8.GetString(frame, RegistrationCodec.HeaderLength, frame.Length - RegistrationCodec.HeaderLength), StringComparison.Ordinal);
    }

    [Fact]
    public void A_response_frame_has_type_2()
    {
        var frame = RegistrationCodec.EncodeResponse(RegistrationResponse.Accept(new RegistrationAccepted { ConnectionId = "x" }));

        Assert.Equal("TUN1"u8.ToArray(), frame[..4]);
        Assert.Equal(2, frame[4]);
    }

    [Fact]
    public async Task Writing_a_request_flushes_the_whole_frame_to_the_peer()
    {
        var peer = new MemoryStream();
        await using var buffered = new BufferedStream(peer, bufferSize: 64 * 1024);

        await RegistrationCodec.WriteRequestAsync(buffered, Request, CancellationToken.None);

        Assert.Equal(RegistrationCodec.EncodeRequest(Request), peer.ToArray());
    }

    [Fact]
    public async Task Writing_a_response_flushes_the_whole_frame_to_the_peer()
    {
        var response = RegistrationResponse.Reject(new RegistrationRejected { Code = RejectionCodes.Overloaded, RetryAfterSeconds = 3 });
        var peer = new MemoryStream();
        await using var buffered = new BufferedStream(peer, bufferSize: 64 * 1024);

        await RegistrationCodec.WriteResponseAsync(buffered, response, CancellationToken.None);

        Assert.Equal(RegistrationCodec.EncodeResponse(response), peer.ToArray());
    }

    [Fact]
    public async Task A_document_of_exactly_the_frame_limit_is_written_and_read_back()
    {
        var request = PaddedTo(TunnelLimits.MaxFrameBodyBytes);

        var frame = RegistrationCodec.EncodeRequest(request);
        Assert.Equal(RegistrationCodec.HeaderLength + TunnelLimits.MaxFrameBodyBytes, frame.Length);

        // Read past the document checks (its client version is over the field limit) to reach the frame reader's bound.
        var header = await RegistrationCodec.ReadRequestHeaderAsync(new MemoryStream(frame), CancellationToken.None);
        Assert.Equal(TunnelLimits.MaxFrameBodyBytes, header);
    }

    [Fact]
    public void A_document_one_byte_past_the_frame_limit_is_not_written()
    {
        var request = PaddedTo(TunnelLimits.MaxFrameBodyBytes + 1);

        var error = Assert.Throws<RegistrationProtocolException>(() => RegistrationCodec.EncodeRequest(request));

        Assert.Equal($"The registration document is {TunnelLimits.MaxFrameBodyBytes + 1} bytes; the limit is {TunnelLimits.MaxFrameBodyBytes}.", error.Message);
    }

    [Fact]
    public async Task A_one_byte_body_is_within_the_frame_bounds()
    {
        var announced = await RegistrationCodec.ReadRequestHeaderAsync(new MemoryStream(Frame(RegistrationFrames.Request, "0")), CancellationToken.None);

        Assert.Equal(1, announced);
    }

    [Fact]
    public async Task A_frame_of_the_other_type_is_refused_naming_both_types()
    {
        var frame = RegistrationCodec.EncodeRequest(Request);

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadResponseAsync(new MemoryStream(frame), CancellationToken.None));

        Assert.Equal("Unexpected registration frame type 1; expected 2.", error.Message);
    }

    [Fact]
    public async Task A_frame_announcing_one_byte_past_the_limit_is_refused_with_the_bounds()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadRequestHeaderAsync(new MemoryStream(Header(RegistrationFrames.Request, TunnelLimits.MaxFrameBodyBytes + 1)), CancellationToken.None));

        Assert.Equal($"The registration frame announces {TunnelLimits.MaxFrameBodyBytes + 1} bytes; it must be between 1 and {TunnelLimits.MaxFrameBodyBytes}.", error.Message);
    }

    [Theory]
    [InlineData(0, "header")]
    [InlineData(RegistrationCodec.HeaderLength - 1, "header")]
    [InlineData(RegistrationCodec.HeaderLength, "body")]
    [InlineData(RegistrationCodec.HeaderLength + 5, "body")]
    public async Task A_connection_that_ends_mid_frame_is_refused_saying_where(int bytesSent, string part)
    {
        var frame = RegistrationCodec.EncodeRequest(Request);

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadRequestAsync(new MemoryStream(frame[..bytesSent]), CancellationToken.None));

        Assert.Equal($"The connection ended in the middle of the registration frame {part}.", error.Message);
    }

    [Fact]
    public async Task A_connection_that_ends_mid_header_is_refused_by_the_header_only_reader_too()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadRequestHeaderAsync(new MemoryStream("TUN1"u8.ToArray()), CancellationToken.None));

        Assert.Equal("The connection ended in the middle of the registration frame header.", error.Message);
    }

    [Fact]
    public async Task Reading_from_or_writing_to_no_stream_is_an_argument_error()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.ReadRequestAsync(null!, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.ReadResponseAsync(null!, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.ReadRequestHeaderAsync(null!, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.WriteRequestAsync(null!, Request, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.WriteResponseAsync(null!, RegistrationResponse.Accept(new RegistrationAccepted { ConnectionId = "x" }), CancellationToken.None));
    }

    [Fact]
    public async Task Writing_no_document_is_an_argument_error()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.WriteRequestAsync(new MemoryStream(), null!, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RegistrationCodec.WriteResponseAsync(new MemoryStream(), null!, CancellationToken.None));
    }

    /// <summary>A request whose JSON document is exactly <paramref name="bodyBytes"/> bytes long.</summary>
    private static RegistrationRequest PaddedTo(int bodyBytes)
    {
        var bare = RegistrationCodec.EncodeRequest(Request).Length - RegistrationCodec.HeaderLength;
        return Request with { ClientVersion = new string('v', bodyBytes - bare) };
    }
}
