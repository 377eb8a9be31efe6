using System.Buffers.Binary;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

/// <summary>Full-duplex HTTP/2 through the tunnel: request and response bodies streaming at once (the gRPC pattern).</summary>
public class DuplexStreamingTests
{
    private const int Messages = 100;

    [Fact]
    public async Task Each_message_is_echoed_before_the_next_is_sent_and_grpc_trailers_reach_the_visitor()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync(configureApp: app => app.MapPost("/duplex", async (HttpContext context) =>
        {
            // Headers first, before any of the request body: the visitor is still sending when they arrive.
            context.Response.ContentType = "application/grpc";
            context.Response.DeclareTrailer("grpc-status");
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            var header = new byte[5];
            while (true)
            {
                var read = await context.Request.Body.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, context.RequestAborted);
                if (read == 0)
                {
                    break;
                }

                var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1))];
                await context.Request.Body.ReadExactlyAsync(payload, context.RequestAborted);
                await context.Response.Body.WriteAsync(header, context.RequestAborted);
                await context.Response.Body.WriteAsync(payload, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }

            context.Response.AppendTrailer("grpc-status", "0");
        }));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var client = new HttpClient();
        var outgoing = Channel.CreateUnbounded<byte[]>();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{harness.VisitorPort}/duplex")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Headers = { Host = TunnelHarness.Hostname, TE = { new("trailers") } },
            Content = new ChannelContent(outgoing.Reader),
        };
        request.Content.Headers.ContentType = new("application/grpc");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);
        await using var echoes = await response.Content.ReadAsStreamAsync(timeout.Token);

        var random = new Random(2);
        for (var i = 0; i < Messages; i++)
        {
            var message = new byte[5 + random.Next(1, 4096)];
            random.NextBytes(message.AsSpan(5));
            message[0] = 0;
            BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), message.Length - 5);
            Assert.True(outgoing.Writer.TryWrite(message));

            // Message i+1 is not sent before the echo of message i is read: nothing may wait in a buffer.
            var echo = new byte[message.Length];
            await echoes.ReadExactlyAsync(echo, timeout.Token);
            Assert.True(echo.AsSpan().SequenceEqual(message), $"echo of message {i} differs");
        }

        outgoing.Writer.Complete();
        Assert.Equal(0, await echoes.ReadAsync(new byte[1], timeout.Token));
        Assert.True(response.TrailingHeaders.TryGetValues("grpc-status", out var status), "no grpc-status trailer arrived");
        Assert.Equal("0", Assert.Single(status));
    }

    /// <summary>A request body written message by message as the test hands them over, each flushed.</summary>
    private sealed class ChannelContent(ChannelReader<byte[]> messages) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            // The request's headers go out before the first message: the call opens with them.
            await stream.FlushAsync(cancellationToken);
            await foreach (var message in messages.ReadAllAsync(cancellationToken))
            {
                await stream.WriteAsync(message, cancellationToken);
                await stream.FlushAsync(cancellationToken);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
