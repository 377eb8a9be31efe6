using System.Net;
using Tunnel.Edge.Tunnels.Http2;
using Xunit;

namespace Tunnel.EndToEnd.Tests.Http2;

/// <summary>
/// A stream decodes its own header blocks: the status, the fields, 1xx responses, trailers, the size
/// limit and malformed blocks, without a socket; and a block gathered over CONTINUATION frames within
/// its bounds, then over a real loopback connection.
/// </summary>
public class Http2StreamHeaderTests
{
    private const int Limit = 1024;
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    [Fact]
    public void A_stream_publishes_its_status_and_fields_only_when_the_block_ends()
    {
        using var connection = NewConnection();
        var stream = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var decoder = new HpackDecoder(Limit);

        var outcome = DecodeBlock(connection, decoder, stream, endStream: false, encoder =>
        {
            encoder.WriteIndexed(HpackStaticTable.Status200);
            encoder.WriteLiteral("x-origin", "a");
            encoder.WriteLiteral("content-type", "text/plain");
        }, beforeEnd: () => Assert.Null(stream.Response));

        Assert.Equal(HeaderBlockOutcome.Response, outcome.Outcome);
        var response = Assert.IsType<HttpResponseMessage>(stream.Response);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("a", Assert.Single(response.Headers.GetValues("x-origin")));
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public void An_informational_block_is_not_published_and_the_final_response_that_follows_is()
    {
        using var connection = NewConnection();
        var stream = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var decoder = new HpackDecoder(Limit);

        var early = DecodeBlock(connection, decoder, stream, endStream: false, encoder =>
        {
            encoder.WriteLiteral(HpackStaticTable.Status200, "103");
            encoder.WriteLiteral("link", "</style.css>; rel=preload");
        });
        Assert.Equal(HeaderBlockOutcome.Informational, early.Outcome);
        Assert.Null(stream.Response);

        var final = DecodeBlock(connection, decoder, stream, endStream: true, encoder => encoder.WriteLiteral(HpackStaticTable.Status200, "204"));
        Assert.Equal(HeaderBlockOutcome.Response, final.Outcome);
        Assert.Equal(HttpStatusCode.NoContent, stream.Response!.StatusCode);
        Assert.False(stream.Response.Headers.Contains("link"));
    }

    [Fact]
    public void A_block_after_the_response_is_its_trailers()
    {
        using var connection = NewConnection();
        var stream = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var decoder = new HpackDecoder(Limit);
        DecodeBlock(connection, decoder, stream, endStream: false, encoder => encoder.WriteIndexed(HpackStaticTable.Status200));

        var trailers = DecodeBlock(connection, decoder, stream, endStream: true, encoder => encoder.WriteLiteral("grpc-status", "0"));

        Assert.Equal(HeaderBlockOutcome.Trailers, trailers.Outcome);
        Assert.True(stream.HasTrailers);
        Assert.Equal("0", Assert.Single(stream.Response!.TrailingHeaders.GetValues("grpc-status")));
    }

    [Fact]
    public void A_block_over_the_limit_is_too_large_and_publishes_no_response()
    {
        using var connection = NewConnection();
        var stream = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var decoder = new HpackDecoder(Limit);

        // 32 per field besides name and value, as RFC 9113 counts: ":status: 200" takes 42, "x" 33 and its value.
        var outcome = DecodeBlock(connection, decoder, stream, endStream: false, encoder =>
        {
            encoder.WriteIndexed(HpackStaticTable.Status200);
            encoder.WriteLiteral("x", new string('v', Limit - 42 - 33));
        });
        Assert.Equal(HeaderBlockOutcome.Response, outcome.Outcome);

        var other = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var tooLarge = DecodeBlock(connection, decoder, other, endStream: false, encoder =>
        {
            encoder.WriteIndexed(HpackStaticTable.Status200);
            encoder.WriteLiteral("x", new string('v', Limit - 42 - 33 + 1));
        });
        Assert.Equal(HeaderBlockOutcome.TooLarge, tooLarge.Outcome);
        Assert.Null(other.Response);
    }

    [Theory]
    [InlineData("fields before :status")]
    [InlineData("no :status")]
    [InlineData("status 101, which HTTP/2 does not allow")]
    [InlineData("an informational response that ends the stream")]
    [InlineData("an invalid :status")]
    [InlineData("a misplaced or unknown pseudo-header")]
    public void A_malformed_response_block_says_what_is_wrong_and_publishes_nothing(string problem)
    {
        using var connection = NewConnection();
        var stream = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var decoder = new HpackDecoder(Limit);

        var outcome = DecodeBlock(connection, decoder, stream, endStream: problem.Contains("ends the stream", StringComparison.Ordinal), encoder =>
        {
            switch (problem)
            {
                case "fields before :status":
                    encoder.WriteLiteral("x-origin", "a");
                    encoder.WriteIndexed(HpackStaticTable.Status200);
                    break;
                case "no :status":
                    break;
                case "status 101, which HTTP/2 does not allow":
                    encoder.WriteLiteral(HpackStaticTable.Status200, "101");
                    break;
                case "an informational response that ends the stream":
                    encoder.WriteLiteral(HpackStaticTable.Status200, "100");
                    break;
                case "an invalid :status":
                    encoder.WriteLiteral(HpackStaticTable.Status200, "2000");
                    break;
                default:
                    encoder.WriteIndexed(HpackStaticTable.Status200);
                    encoder.WriteIndexed(HpackStaticTable.Status200);
                    break;
            }
        });

        Assert.Equal(HeaderBlockOutcome.Malformed, outcome.Outcome);
        Assert.Equal(problem, outcome.Malformed);
        Assert.Null(stream.Response);
    }

    [Fact]
    public void Trailers_that_do_not_end_the_stream_or_carry_a_pseudo_header_are_malformed()
    {
        using var connection = NewConnection();
        var stream = new Http2Stream(connection, new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), isExtendedConnect: false);
        var decoder = new HpackDecoder(Limit);
        DecodeBlock(connection, decoder, stream, endStream: false, encoder => encoder.WriteIndexed(HpackStaticTable.Status200));

        var open = DecodeBlock(connection, decoder, stream, endStream: false, encoder => encoder.WriteLiteral("grpc-status", "0"));
        Assert.Equal((HeaderBlockOutcome.Malformed, "a second header block that does not end the stream"), open);

        var pseudo = DecodeBlock(connection, decoder, stream, endStream: true, encoder => encoder.WriteIndexed(HpackStaticTable.Status200));
        Assert.Equal((HeaderBlockOutcome.Malformed, "a misplaced or unknown pseudo-header"), pseudo);
    }

    [Fact]
    public void A_header_block_is_gathered_over_continuations_within_the_frame_bound()
    {
        using var block = new Http2HeaderBlock();
        block.Start(streamId: 3, endStream: true, [1, 2]);
        for (var i = 0; i < Http2Connection.MaxContinuationFrames; i++)
        {
            block.Continue(i == 0 ? [3] : []);
        }

        Assert.Equal(3, block.StreamId);
        Assert.True(block.EndStream);
        Assert.Equal([1, 2, 3], block.Bytes.ToArray());

        var flood = Assert.Throws<Http2ConnectionException>(() => block.Continue([]));
        Assert.Equal(Http2ErrorCode.EnhanceYourCalm, flood.Code);
        Assert.Equal("continuation_flood", flood.ErrorType);
    }

    [Fact]
    public void A_header_block_past_its_byte_bound_ends_the_connection_calmly()
    {
        using var block = new Http2HeaderBlock();
        block.Start(streamId: 1, endStream: false, new byte[Http2Connection.MaxHeaderBlockBytes - 1]);
        block.Continue([0]);

        var tooLarge = Assert.Throws<Http2ConnectionException>(() => block.Continue([0]));
        Assert.Equal(Http2ErrorCode.EnhanceYourCalm, tooLarge.Code);
        Assert.Equal("header_block_too_large", tooLarge.ErrorType);
    }

    [Fact]
    public async Task A_response_whose_headers_come_in_HEADERS_and_CONTINUATION_frames_reaches_its_request_whole()
    {
        await using var peer = await Http2ConnectionErrorTests.HandWrittenServer.StartAsync();
        var serverStream = peer.ServerStream;
        var sending = peer.Invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), CancellationToken.None);
        var preface = new byte[Http2FrameHeader.ClientPreface.Length];
        await serverStream.ReadExactlyAsync(preface).AsTask().WaitAsync(Generous);
        await Http2ConnectionErrorTests.WriteFrameAsync(serverStream, Http2FrameType.Settings, 0, 0, []);
        using var frames = new Http2FrameReader(serverStream, Http2FrameHeader.DefaultMaxFrameSize);
        var streamId = await Http2ConnectionErrorTests.NextHeadersAsync(frames);

        using var encoder = new HpackEncoder();
        encoder.WriteIndexed(HpackStaticTable.Status200);
        encoder.WriteLiteral("x-first", "1");
        encoder.WriteLiteral("x-second", "2");
        var block = encoder.Written.ToArray();
        await Http2ConnectionErrorTests.WriteFrameAsync(serverStream, Http2FrameType.Headers, Http2Flags.EndStream, streamId, block[..1]);
        await Http2ConnectionErrorTests.WriteFrameAsync(serverStream, Http2FrameType.Continuation, 0, streamId, block[1..5]);
        await Http2ConnectionErrorTests.WriteFrameAsync(serverStream, Http2FrameType.Continuation, 0, streamId, []);
        await Http2ConnectionErrorTests.WriteFrameAsync(serverStream, Http2FrameType.Continuation, Http2Flags.EndHeaders, streamId, block[5..]);

        using var response = await sending.WaitAsync(Generous);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("1", Assert.Single(response.Headers.GetValues("x-first")));
        Assert.Equal("2", Assert.Single(response.Headers.GetValues("x-second")));
        Assert.Empty(await response.Content.ReadAsByteArrayAsync().WaitAsync(Generous));
    }

    private static Http2Connection NewConnection() => new(new MemoryStream(), new Http2ClientSettings(), TimeProvider.System);

    /// <summary>One block through the stream, as the connection's reader loop does it.</summary>
    private static (HeaderBlockOutcome Outcome, string? Malformed) DecodeBlock(
        Http2Connection connection, HpackDecoder decoder, Http2Stream stream, bool endStream, Action<HpackEncoder> write, Action? beforeEnd = null)
    {
        using var encoder = new HpackEncoder();
        write(encoder);
        stream.BeginHeaderBlock(Limit, new RecentHeaderValues());
        decoder.Decode(encoder.Written, stream);
        beforeEnd?.Invoke();
        lock (connection.Sync)
        {
            var outcome = stream.EndHeaderBlockLocked(endStream, out var malformed);
            return (outcome, malformed);
        }
    }
}
