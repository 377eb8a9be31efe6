using System.Collections.Concurrent;
using Google.Protobuf;
using Grpc.Core;

namespace GrpcOrigin;

/// <summary>
/// Answers as each request asks: a status before or after replies, response headers and trailers with
/// the values the client sent, replies of a chosen size, or a wait until the call is cancelled.
/// </summary>
public sealed class ProbeService(CancellationLog cancellations) : Probe.ProbeBase
{
    /// <summary>Request metadata that is echoed back in the response headers.</summary>
    public const string EchoHeader = "x-echo";

    /// <summary>Request metadata that is echoed back in the trailers.</summary>
    public const string EchoTrailer = "x-echo-trailer";

    public override async Task<ProbeReply> Unary(ProbeRequest request, ServerCallContext context)
    {
        await BeginAsync(request, context, sendHeaders: false);
        await WaitForCancelAsync(request, context);
        EndWithStatus(request, context);
        return Reply(request, 0, request.Payload.Length);
    }

    public override async Task ServerStream(ProbeRequest request, IServerStreamWriter<ProbeReply> responseStream, ServerCallContext context)
    {
        await BeginAsync(request, context, sendHeaders: request.Replies > 0);
        for (var i = 0; i < request.Replies; i++)
        {
            await responseStream.WriteAsync(Reply(request, i, request.Payload.Length), context.CancellationToken);
        }

        // After the replies: a client that cancels mid-stream is seen here.
        await WaitForCancelAsync(request, context);
        EndWithStatus(request, context);
    }

    public override async Task<ProbeReply> ClientStream(IAsyncStreamReader<ProbeRequest> requestStream, ServerCallContext context)
    {
        long received = 0;
        ProbeRequest? last = null;
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            received += request.Payload.Length;
            last = request;
        }

        last ??= new ProbeRequest();
        await BeginAsync(last, context, sendHeaders: false);
        EndWithStatus(last, context);
        return Reply(last, 0, received);
    }

    public override async Task Bidi(IAsyncStreamReader<ProbeRequest> requestStream, IServerStreamWriter<ProbeReply> responseStream, ServerCallContext context)
    {
        long received = 0;
        var index = 0;
        ProbeRequest? last = null;
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            if (index == 0)
            {
                await BeginAsync(request, context, sendHeaders: true);
            }

            received += request.Payload.Length;
            last = request;
            if (request.FailCode != 0)
            {
                // A status asked for mid-stream ends the call after the replies sent so far.
                EndWithStatus(request, context);
            }

            await responseStream.WriteAsync(Reply(request, index++, received), context.CancellationToken);
        }

        EndWithStatus(last ?? new ProbeRequest(), context);
    }

    private async Task BeginAsync(ProbeRequest request, ServerCallContext context, bool sendHeaders)
    {
        var echo = context.RequestHeaders.GetValue(EchoHeader);
        if (echo is not null)
        {
            if (sendHeaders)
            {
                await context.WriteResponseHeadersAsync(new Metadata { { EchoHeader, echo } });
            }
            else
            {
                // Unary and client-streaming calls send headers with the first reply or the status.
                context.ResponseTrailers.Add(EchoHeader, echo);
            }
        }

        if (context.RequestHeaders.GetValue(EchoTrailer) is { } trailer)
        {
            context.ResponseTrailers.Add(EchoTrailer, trailer);
        }
    }

    private async Task WaitForCancelAsync(ProbeRequest request, ServerCallContext context)
    {
        if (!request.WaitForCancel)
        {
            return;
        }

        try
        {
            // Long enough for any deadline a test sets; short enough that a lost cancellation ends.
            await Task.Delay(TimeSpan.FromSeconds(30), context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            cancellations.Record(request.Tag);
            throw;
        }
    }

    private static void EndWithStatus(ProbeRequest request, ServerCallContext context)
    {
        if (request.FailCode != 0)
        {
            // The trailers set on the context so far (the echoed metadata) go out with the status.
            throw new RpcException(new Status((StatusCode)request.FailCode, request.FailMessage));
        }
    }

    private static ProbeReply Reply(ProbeRequest request, int index, long received) => new()
    {
        Index = index,
        Received = received,
        Payload = request.ReplySize > 0 ? ByteString.CopyFrom(new byte[request.ReplySize]) : ByteString.Empty,
    };
}

/// <summary>The tags of calls whose cancellation the server saw, for the tests to wait on.</summary>
public sealed class CancellationLog
{
    private readonly ConcurrentDictionary<string, bool> _seen = new(StringComparer.Ordinal);

    /// <summary>Records that the call tagged <paramref name="tag"/> was cancelled.</summary>
    public void Record(string tag) => _seen[tag] = true;

    /// <summary>Whether the call tagged <paramref name="tag"/> was cancelled.</summary>
    public bool Saw(string tag) => _seen.ContainsKey(tag);
}
