using System.Net;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Access;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Forwarding;

/// <summary>The attempt loop: one request sent to a destination (a tunnel connection or a peer edge), and sent again to another when the rules allow.</summary>
internal sealed partial class RequestForwarder
{
    /// <summary>
    /// The places one request may be sent, taken one at a time: the tunnel connections for its host
    /// (<see cref="TunnelRoute"/>) or the peer edges holding its route (<see cref="PeerRoute"/>). Each
    /// builds the request in its hop's form and reads the response's headers back in that same form.
    /// </summary>
    private interface IForwardRoute
    {
        /// <summary>How many destinations, in all, a request that failed before its answer may be sent to.</summary>
        int MaxAttempts { get; }

        /// <summary>The client of the destination taken last.</summary>
        HttpMessageInvoker Invoker { get; }

        /// <summary>Takes the next destination; <c>false</c>, with the failure to report, when none is left.</summary>
        bool TryTake(out ForwarderFailure exhausted);

        /// <summary>The request in this hop's form.</summary>
        HttpRequestMessage CreateRequest(HttpContext context, VisitorBody body, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket);

        /// <summary>Whether a request that failed this way may go to another destination (its body and the attempts left permitting).</summary>
        bool MaySendAgain(HttpContext context, HttpRequestException ex);

        /// <summary>The destination failed the request, which goes to another.</summary>
        void SendingAgain(HttpRequestException ex);

        /// <summary>The destination failed the request for good: what to report.</summary>
        ForwarderFailure Failed(HttpRequestException ex);

        /// <summary>The destination answered.</summary>
        void Answered();

        /// <summary>The request is done with the destination, answered or not.</summary>
        void Release();

        /// <summary>Passes the response's headers on to the visitor's, less hop-by-hop ones (see <see cref="CopyResponseFields"/>).</summary>
        void CopyResponseHeaders(HttpResponseMessage upstream, IHeaderDictionary to, bool withContentHeaders);
    }

    /// <summary>
    /// The attempt loop: takes a destination, sends, and when the destination failed in a way the rules
    /// allow (<see cref="SendAsync"/>) takes another, at most <see cref="IForwardRoute.MaxAttempts"/> in all.
    /// </summary>
    private async Task ForwardAsync(HttpContext context, string host, IForwardRoute route, VisitorBody body, WebSocketUpgrade? webSocket)
    {
        var policy = EdgeRequestFeature.For(context).Policy;
        for (var attempt = 1; ; attempt++)
        {
            if (!route.TryTake(out var exhausted))
            {
                await FailAsync(context, _logger, host, exhausted).ConfigureAwait(false);
                return;
            }

            using var deadline = new ResponseHeadersDeadline(policy.ResponseHeadersTimeout, context.RequestAborted);
            using var request = route.CreateRequest(context, body, deadline, webSocket);
            try
            {
                var (response, sendAgain) = await SendAsync(context, host, route, request, deadline, body, attempt < route.MaxAttempts).ConfigureAwait(false);
                if (sendAgain)
                {
                    continue;
                }

                if (response is not null)
                {
                    route.Answered();
                    using (response)
                    {
                        await AnswerAsync(context, host, route, response, webSocket).ConfigureAwait(false);
                    }
                }

                return;
            }
            finally
            {
                route.Release();
            }
        }
    }

    /// <summary>
    /// Sends the request and waits for the response headers. Returns the response; or, when the
    /// destination failed before it answered, whether the request may go to another: the origin never
    /// saw it (or, on a tunnel, it is idempotent and its connection was lost), its body can be sent
    /// again, and attempts are left. Every other failure is reported here and ends the request.
    /// </summary>
    private async Task<(HttpResponseMessage? Response, bool SendAgain)> SendAsync(HttpContext context, string host, IForwardRoute route,
        HttpRequestMessage request, ResponseHeadersDeadline deadline, VisitorBody body, bool attemptsLeft)
    {
        ForwarderFailure failure;
        try
        {
            if (request.Content is not StreamingRequestContent)
            {
                deadline.Start();
            }

            var response = await route.Invoker.SendAsync(request, deadline.Token).ConfigureAwait(false);
            deadline.HeadersReceived();
            return (response, false);
        }
        catch (HttpRequestException ex) when (Tunnels.Http2.Http2Errors.IsNoStreamFree(ex))
        {
            // Every stream the origin allows stayed busy for the whole wait: the site is saturated, and
            // the visitor is told so (503, Retry-After) rather than kept until the response-headers timeout.
            failure = new(ForwarderError.NoStreamFree) { Waited = _options.Limits.StreamWaitTimeout };
        }
        catch (HttpRequestException ex) when (!context.RequestAborted.IsCancellationRequested && route.MaySendAgain(context, ex) && body.CanSendAgain && attemptsLeft)
        {
            route.SendingAgain(ex);
            return (null, true);
        }
        catch (OperationCanceledException) when (deadline.Expired)
        {
            failure = new(ForwarderError.ResponseHeadersTimeout) { Waited = deadline.Timeout };
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return (null, false);
        }
        catch (HttpRequestException ex) when (FindVisitorError(ex) is { } visitorError)
        {
            // The visitor's own request body was at fault (too large, malformed, cut short).
            failure = ForwarderFailure.OfVisitor(visitorError.StatusCode, visitorError.Message);
        }
        catch (HttpRequestException ex)
        {
            failure = route.Failed(ex);
        }

        await FailAsync(context, _logger, host, failure).ConfigureAwait(false);
        return (null, false);
    }

    private async Task AnswerAsync(HttpContext context, string host, IForwardRoute route, HttpResponseMessage response, WebSocketUpgrade? webSocket)
    {
        // RFC 8441: 200 is the only success; the HTTP client opens the stream both ways only then.
        if (webSocket is not null && response.StatusCode == HttpStatusCode.OK)
        {
            await TunnelWebSocketAsync(context, route, webSocket, response, host).ConfigureAwait(false);
        }
        else
        {
            // A refused upgrade (403, 404, ...) is an ordinary response for the visitor.
            await CopyResponseAsync(context, route, response, host).ConfigureAwait(false);
        }
    }

    private static BadHttpRequestException? FindVisitorError(Exception ex)
    {
        for (Exception? current = ex; current is not null; current = current.InnerException)
        {
            if (current is BadHttpRequestException bad)
            {
                return bad;
            }
        }

        return null;
    }

    private static bool IsNotProcessed(HttpRequestException ex) =>
        ex.HttpRequestError == HttpRequestError.ConnectionError;

    /// <summary>
    /// An idempotent request (RFC 9110 section 9.2.2) whose tunnel connection was lost before the response
    /// headers came may be sent again, as any HTTP client may: the origin may have seen it, but seeing it
    /// twice has the effect of once. Lost means the connection broke under it (reset, ended) or the edge
    /// has given it up (silent, draining, closed: a black-holed tunnel fails its requests with a PING
    /// timeout). A stream the origin itself reset, or an answer over the edge's limits, on a connection
    /// still in use is the origin's answer, not a lost tunnel, and is not repeated.
    /// </summary>
    private static bool IsRepeatable(string method, HttpRequestException ex, TunnelConnection connection)
    {
        if (!(HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method)
            || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method)))
        {
            return false;
        }

        if (FindVisitorError(ex) is not null)
        {
            return false;
        }

        if (!connection.IsAlive)
        {
            return true;
        }

        if (ex.HttpRequestError is not (HttpRequestError.ResponseEnded or HttpRequestError.Unknown))
        {
            return false;
        }

        for (Exception? current = ex; current is not null; current = current.InnerException)
        {
            if (current is HttpProtocolException)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The visitor's request body as the attempts share it: read whole when small, otherwise streamed once.</summary>
    /// <param name="Replayable">The body, read whole, or <c>null</c> when it streams.</param>
    private sealed record VisitorBody(byte[]? Replayable)
    {
        /// <summary>Set once a streamed body began to be sent.</summary>
        public StrongBox Started { get; } = new();

        /// <summary>Whether the body can go to another destination: read whole, or not yet begun.</summary>
        public bool CanSendAgain => Replayable is not null || !Started.Value;
    }
}
