using System.Net;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Access;
using Tunnel.Edge.Cluster;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Forwarding;

/// <summary>The one hop to a peer edge, for a request whose host has no local tunnel.</summary>
internal sealed partial class RequestForwarder
{
    // A peer that cannot be reached is passed over for the next one holding the route, this often.
    private const int MaxPeerAttempts = 3;

    private readonly PeerSet? _peers;
    private readonly ClusterMetrics? _clusterMetrics;

    /// <summary>
    /// Sends the request to the best peer holding a route for <paramref name="host"/>, if any and if the
    /// request did not come from a peer itself (one hop at most). Returns whether it was handled.
    /// </summary>
    private async Task<bool> TryForwardToPeerAsync(HttpContext context, string host, EdgeRequestFeature edgeRequest, StrongBox requestBodyStarted, byte[]? replayableBody, WebSocketUpgrade? webSocket)
    {
        if (_peers is null || context.Features.Get<PeerRequestFeature>() is not null)
        {
            return false;
        }

        var requestId = edgeRequest.RequestId;
        var tried = new List<PeerEdge>();
        while (true)
        {
            var peer = _peers.Choose(host, tried);
            if (peer is null)
            {
                if (tried.Count == 0)
                {
                    return false;
                }

                EdgeLog.RequestFailed(_logger, requestId, host, 502, "no peer holding the route answered");
                UpstreamErrors.Report(context, UpstreamErrors.ConnectionLost);
                await ErrorPages.WriteAsync(context, StatusCodes.Status502BadGateway, "Bad Gateway", $"The edges holding the tunnel for {host} could not be reached.", host, requestId).ConfigureAwait(false);
                return true;
            }

            using var deadline = new ResponseHeadersDeadline(edgeRequest.Policy.ResponseHeadersTimeout, context.RequestAborted);
            using var request = CreateRequest(context, requestBodyStarted, replayableBody, deadline, webSocket);
            request.RequestUri = new Uri(peer.BaseUri, request.RequestUri!.PathAndQuery);

            // :authority names the peer, so every hostname shares one connection to it; the visitor's
            // host travels in X-Forwarded-Host, which the peer restores.
            request.Headers.Host = null;
            request.Headers.TryAddWithoutValidation(PeerRequests.HopHeader, _options.Name);
            HttpResponseMessage response;
            try
            {
                if (request.Content is not StreamingRequestContent)
                {
                    deadline.Start();
                }

                response = await peer.Invoker.SendAsync(request, deadline.Token).ConfigureAwait(false);
                deadline.HeadersReceived();
            }
            catch (HttpRequestException ex) when (!context.RequestAborted.IsCancellationRequested && IsNotProcessed(ex) && (replayableBody is not null || !requestBodyStarted.Value) && tried.Count + 1 < MaxPeerAttempts)
            {
                peer.Failed();
                tried.Add(peer);
                _clusterMetrics?.Forwarded(peer.Name, reached: false);
                ClusterLog.PeerForwardFailed(_logger, requestId, host, peer.Name, Describe(ex));
                continue;
            }
            catch (OperationCanceledException) when (deadline.Expired)
            {
                EdgeLog.ResponseHeadersTimedOut(_logger, requestId, host, deadline.Timeout.TotalSeconds);
                UpstreamErrors.Report(context, UpstreamErrors.Timeout);
                await ErrorPages.WriteAsync(context, StatusCodes.Status504GatewayTimeout, ErrorPages.TitleFor(StatusCodes.Status504GatewayTimeout),
                    $"The origin for {host} did not begin to answer within {deadline.Timeout.TotalSeconds:0.###} s.", host, requestId).ConfigureAwait(false);
                return true;
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                return true;
            }
            catch (HttpRequestException ex) when (FindVisitorError(ex) is { } visitorError)
            {
                EdgeLog.RequestFailed(_logger, requestId, host, visitorError.StatusCode, visitorError.Message);
                await ErrorPages.WriteAsync(context, visitorError.StatusCode, ErrorPages.TitleFor(visitorError.StatusCode), visitorError.Message, host, requestId).ConfigureAwait(false);
                return true;
            }
            catch (HttpRequestException ex)
            {
                peer.Failed();
                _clusterMetrics?.Forwarded(peer.Name, reached: false);
                EdgeLog.RequestFailed(_logger, requestId, host, 502, $"peer {peer.Name}: {Describe(ex)}");
                UpstreamErrors.Report(context, UpstreamErrors.Classify(ex));
                await ErrorPages.WriteAsync(context, StatusCodes.Status502BadGateway, "Bad Gateway", $"The edge holding the tunnel for {host} failed before it answered.", host, requestId).ConfigureAwait(false);
                return true;
            }

            peer.CountForwarded();
            _clusterMetrics?.Forwarded(peer.Name, reached: true);
            ClusterLog.RequestForwarded(_logger, requestId, host, peer.Name);
            using (response)
            {
                if (webSocket is not null && response.StatusCode == HttpStatusCode.OK)
                {
                    await TunnelWebSocketAsync(context, webSocket, response, requestId, host).ConfigureAwait(false);
                }
                else
                {
                    await CopyResponseAsync(context, response, requestId, host).ConfigureAwait(false);
                }
            }

            return true;
        }
    }
}
