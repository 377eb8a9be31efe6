using System.Buffers.Binary;
using System.Text;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;

namespace Tunnel.Protocol.Tests;

public class RegistrationCodecTests
{
    private static readonly RegistrationRequest SampleRequest = new()
    {
        ConnectorId = "c1",
        ConnectionIndex = 2,
        Hostnames = ["app.example.com", "*.example.org"],
        ClientVersion = "test/1",
        PreviousAttempts = 3,
    };

    [Fact]
    public async Task Request_round_trips_and_leaves_following_bytes_in_the_stream()
    {
        var frame = RegistrationCodec.EncodeRequest(SampleRequest);
        var stream = new MemoryStream([.. frame, .. "PRI * HTTP/2.0"u8.ToArray()]);

        var read = await RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None);

        Assert.Equal(SampleRequest.ConnectorId, read.ConnectorId);
        Assert.Equal(SampleRequest.ConnectionIndex, read.ConnectionIndex);
        Assert.Equal(SampleRequest.Hostnames, read.Hostnames);
        Assert.Equal(SampleRequest.PreviousAttempts, read.PreviousAttempts);
        Assert.Equal(frame.Length, stream.Position);
    }

    [Fact]
    public async Task Rejection_round_trips_with_retry_after()
    {
        var response = RegistrationResponse.Reject(new RegistrationRejected { Code = RejectionCodes.Overloaded, Message = "full", Retryable = true, RetryAfterSeconds = 7 });
        var stream = new MemoryStream(RegistrationCodec.EncodeResponse(response));

        var read = await RegistrationCodec.ReadResponseAsync(stream, CancellationToken.None);

        Assert.Null(read.Accepted);
        Assert.Equal(RejectionCodes.Overloaded, read.Rejected!.Code);
        Assert.True(read.Rejected.Retryable);
        Assert.Equal(7, read.Rejected.RetryAfterSeconds);
    }

    [Fact]
    public async Task Wrong_magic_is_refused_as_not_a_tunnel_peer()
    {
        var stream = new MemoryStream("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None));
        Assert.Contains("magic", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(TunnelLimits.MaxFrameBodyBytes + 1)]
    [InlineData(int.MaxValue)]
    public async Task Announced_length_outside_the_limit_is_refused_before_reading_the_body(int length)
    {
        var header = new byte[RegistrationCodec.HeaderLength];
        "TUN1"u8.CopyTo(header);
        header[4] = 1;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), length);

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(header), CancellationToken.None));
        Assert.Contains("announces", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Truncated_frame_is_refused()
    {
        var frame = RegistrationCodec.EncodeRequest(SampleRequest);
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(frame[..^3]), CancellationToken.None));
        Assert.Contains("ended", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{\"connectorId\":\"c\",\"hostnames\":[]}")]
    [InlineData("{\"connectorId\":\"\",\"hostnames\":[\"a.example\"]}")]
    [InlineData("{\"connectorId\":\"c\",\"hostnames\":[\"a.example\"],\"connectionIndex\":-1}")]
    public async Task Malformed_documents_are_refused_with_a_reason(string json)
    {
        var stream = new MemoryStream(Frame(1, Encoding.UTF8.GetBytes(json)));
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None));
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public async Task Too_many_hostnames_are_refused()
    {
        var request = SampleRequest with { Hostnames = Enumerable.Range(0, TunnelLimits.MaxHostnamesPerRegistration + 1).Select(i => $"h{i}.example.com").ToArray() };
        var stream = new MemoryStream(RegistrationCodec.EncodeRequest(request));
        await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None));
    }

    [Fact]
    public async Task A_response_frame_is_not_accepted_as_a_request()
    {
        var stream = new MemoryStream(RegistrationCodec.EncodeResponse(RegistrationResponse.Accept(new RegistrationAccepted { ConnectionId = "x" })));
        await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(stream, CancellationToken.None));
    }

    [Fact]
    public async Task A_response_that_is_both_accepted_and_rejected_is_refused()
    {
        var json = "{\"accepted\":{\"connectionId\":\"x\"},\"rejected\":{\"code\":\"c\"}}";
        var stream = new MemoryStream(Frame(2, Encoding.UTF8.GetBytes(json)));
        await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadResponseAsync(stream, CancellationToken.None));
    }

    private static byte[] Frame(byte type, byte[] body)
    {
        var frame = new byte[RegistrationCodec.HeaderLength + body.Length];
        "TUN1"u8.CopyTo(frame);
        frame[4] = type;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), body.Length);
        body.CopyTo(frame, RegistrationCodec.HeaderLength);
        return frame;
    }
}
