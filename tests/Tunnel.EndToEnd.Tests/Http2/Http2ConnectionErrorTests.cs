using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Tunnel.Edge.Tunnels.Http2;
using Xunit;

namespace Tunnel.EndToEnd.Tests.Http2;

/// <summary>
/// The client against a hand-written server on a real loopback socket, for what Kestrel never does:
/// a header block HPACK cannot decode must end the connection with GOAWAY (COMPRESSION_ERROR).
/// </summary>
public class Http2ConnectionErrorTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_header_block_that_cannot_be_decoded_closes_the_connection_with_GOAWAY_and_fails_the_request_as_lost()
    {
        await using var peer = await HandWrittenServer.StartAsync();
        var serverStream = peer.ServerStream;
        var invoker = peer.Invoker;
        var sending = invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), CancellationToken.None);

        var preface = new byte[Http2FrameHeader.ClientPreface.Length];
        await serverStream.ReadExactlyAsync(preface).AsTask().WaitAsync(Generous);
        Assert.True(preface.AsSpan().SequenceEqual(Http2FrameHeader.ClientPreface));
        await WriteFrameAsync(serverStream, Http2FrameType.Settings, 0, 0, []);

        using var frames = new Http2FrameReader(serverStream, Http2FrameHeader.DefaultMaxFrameSize);
        var streamId = 0;
        while (streamId == 0)
        {
            Assert.True(await frames.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(Generous));
            if (frames.Header.Type == Http2FrameType.Headers)
            {
                Assert.True(frames.Header.HasFlag(Http2Flags.EndStream) && frames.Header.HasFlag(Http2Flags.EndHeaders));
                streamId = frames.Header.StreamId;
            }
        }

        // An indexed field with index 0 is a decoding error (RFC 7541 section 6.1).
        await WriteFrameAsync(serverStream, Http2FrameType.Headers, Http2Flags.EndHeaders, streamId, [0x80]);

        uint? goAwayCode = null;
        while (goAwayCode is null && await frames.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(Generous))
        {
            if (frames.Header.Type == Http2FrameType.GoAway)
            {
                goAwayCode = BinaryPrimitives.ReadUInt32BigEndian(frames.Payload[4..]);
            }
        }

        Assert.Equal((uint)Http2ErrorCode.CompressionError, goAwayCode);
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => sending.WaitAsync(Generous));
        Assert.Equal(HttpRequestError.ResponseEnded, error.HttpRequestError);

        // The client closes its end after the GOAWAY.
        var rest = new byte[64];
        while (await serverStream.ReadAsync(rest).AsTask().WaitAsync(Generous) > 0)
        {
        }

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), CancellationToken.None));
        Assert.Equal(HttpRequestError.ConnectionError, refused.HttpRequestError);
    }

    [Fact]
    public async Task A_refused_stream_is_opened_again_for_a_request_without_a_body_or_with_one_in_memory_and_reported_as_not_processed_for_a_streamed_one()
    {
        await using var peer = await HandWrittenServer.StartAsync();
        var serverStream = peer.ServerStream;
        var invoker = peer.Invoker;
        var get = invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://tunnel/x"), CancellationToken.None);

        var preface = new byte[Http2FrameHeader.ClientPreface.Length];
        await serverStream.ReadExactlyAsync(preface).AsTask().WaitAsync(Generous);
        await WriteFrameAsync(serverStream, Http2FrameType.Settings, 0, 0, []);
        using var frames = new Http2FrameReader(serverStream, Http2FrameHeader.DefaultMaxFrameSize);

        // The first HEADERS is refused, as Kestrel does at its stream limit; the client opens the same
        // request again on a new stream, which is answered (":status: 200" is static index 8).
        var first = await NextHeadersAsync(frames);
        await WriteFrameAsync(serverStream, Http2FrameType.RstStream, 0, first, RefusedStreamPayload());
        var second = await NextHeadersAsync(frames);
        Assert.True(second > first);
        await WriteFrameAsync(serverStream, Http2FrameType.Headers, Http2Flags.EndHeaders | Http2Flags.EndStream, second, [0x88]);
        using (var response = await get.WaitAsync(Generous))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // A body held in memory (the forwarder's replayable bodies) is sent again whole on a new stream.
        var post = invoker.SendAsync(new HttpRequestMessage(HttpMethod.Post, "http://tunnel/x") { Content = new ByteArrayContent([1, 2, 3]) }, CancellationToken.None);
        var third = await NextHeadersAsync(frames);
        await WriteFrameAsync(serverStream, Http2FrameType.RstStream, 0, third, RefusedStreamPayload());
        var (fourth, body) = await NextHeadersAndBodyAsync(frames);
        Assert.True(fourth > third);
        Assert.Equal([1, 2, 3], body);
        await WriteFrameAsync(serverStream, Http2FrameType.Headers, Http2Flags.EndHeaders | Http2Flags.EndStream, fourth, [0x88]);
        using (var response = await post.WaitAsync(Generous))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // A streamed body is not sent again by the client: its content may have been read.
        var streamed = invoker.SendAsync(new HttpRequestMessage(HttpMethod.Post, "http://tunnel/x") { Content = new StreamContent(new MemoryStream([4, 5, 6])) }, CancellationToken.None);
        var fifth = await NextHeadersAsync(frames);
        await WriteFrameAsync(serverStream, Http2FrameType.RstStream, 0, fifth, RefusedStreamPayload());
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => streamed.WaitAsync(Generous));
        Assert.Equal(HttpRequestError.ConnectionError, refused.HttpRequestError);
        Assert.True(Http2Errors.IsRefusedStream(refused));
    }

    /// <summary>The client over one end of a loopback TCP connection; the test writes the server's frames on the other.</summary>
    internal sealed class HandWrittenServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly TcpClient _client;
        private readonly TcpClient _server;

        private HandWrittenServer(TcpListener listener, TcpClient client, TcpClient server)
        {
            _listener = listener;
            _client = client;
            _server = server;
            ServerStream = server.GetStream();
            Invoker = new HttpMessageInvoker(new TunnelHttp2Handler(client.GetStream(), new Http2ClientSettings(), TimeProvider.System));
        }

        public NetworkStream ServerStream { get; }

        public HttpMessageInvoker Invoker { get; }

        public static async Task<HandWrittenServer> StartAsync()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var client = new TcpClient(AddressFamily.InterNetwork);
            await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
            var server = await listener.AcceptTcpClientAsync();
            return new HandWrittenServer(listener, client, server);
        }

        public ValueTask DisposeAsync()
        {
            Invoker.Dispose();
            _server.Dispose();
            _client.Dispose();
            _listener.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private static byte[] RefusedStreamPayload()
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)Http2ErrorCode.RefusedStream);
        return payload;
    }

    internal static async Task<int> NextHeadersAsync(Http2FrameReader frames)
    {
        while (true)
        {
            Assert.True(await frames.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(Generous));
            if (frames.Header.Type == Http2FrameType.Headers)
            {
                return frames.Header.StreamId;
            }
        }
    }

    /// <summary>The next HEADERS' stream, and the DATA sent on it up to END_STREAM.</summary>
    private static async Task<(int StreamId, byte[] Body)> NextHeadersAndBodyAsync(Http2FrameReader frames)
    {
        var streamId = await NextHeadersAsync(frames);
        var body = new List<byte>();
        while (true)
        {
            Assert.True(await frames.ReadFrameAsync(CancellationToken.None).AsTask().WaitAsync(Generous));
            if (frames.Header.Type == Http2FrameType.Data && frames.Header.StreamId == streamId)
            {
                body.AddRange(frames.Payload.ToArray());
                if (frames.Header.HasFlag(Http2Flags.EndStream))
                {
                    return (streamId, body.ToArray());
                }
            }
        }
    }

    internal static async Task WriteFrameAsync(Stream stream, Http2FrameType type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[Http2FrameHeader.Size + payload.Length];
        Http2FrameHeader.Write(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame, Http2FrameHeader.Size);
        await stream.WriteAsync(frame);
    }
}
