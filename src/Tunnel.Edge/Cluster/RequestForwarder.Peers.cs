using System.Net;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Access;
using Tunnel.Edge.Cluster;

namespace Tunnel.Edge.Forwarding;

/// <summary>The one hop to a peer edge, for a request whose host has no local tunnel.</summary>
internal sealed partial class RequestForwarder
{
    // A peer that cannot be reached is passed over for the next one holding the route, this often.
    private const int MaxPeerAttempts = 3;

    private readonly PeerSet? _peers;
    private readonly ClusterMetrics? _clusterMetrics;

    /// <summary>Whether a request may go to a peer edge: in a cluster, and not from a peer itself (one hop at most).</summary>
    private bool CanAskPeers(HttpContext context) => _peers is not null && context.Features.Get<PeerRequestFeature>() is null;

    /// <summary>
    /// The peer edges holding a route for the host, the best first; one that cannot be reached is passed
    /// over. With none holding it, the host has no tunnel anywhere in the cluster.
    /// </summary>
    private sealed class PeerRoute(RequestForwarder forwarder, HttpContext context, string host) : IForwardRoute
    {
        private readonly List<PeerEdge> _tried = [];
        private PeerEdge? _current;

        public int MaxAttempts => MaxPeerAttempts;

        public HttpMessageInvoker Invoker => _current!.Invoker;

        private string RequestId => EdgeRequestFeature.For(context).RequestId;

        public bool TryTake(out ForwarderFailure exhausted)
        {
            _current = forwarder._peers!.Choose(host, _tried, out var ready);
            if (_current is not null && !ready)
            {
                // No peer publishes a ready tunnel: this one may be ready by now, or answers 503 not ready.
                ReadinessPublishLog.ForwardedToNotReadyPeer(forwarder._logger, RequestId, host, _current.Name);
            }

            exhausted = _tried.Count == 0 ? forwarder.NoTunnelFailure(host) : new(ForwarderError.NoPeerAnswered);
            return _current is not null;
        }

        public HttpRequestMessage CreateRequest(HttpContext context, VisitorBody body, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket)
        {
            var request = RequestForwarder.CreateRequest(context, body.Started, body.Replayable, deadline, webSocket);
            request.RequestUri = new Uri(_current!.BaseUri, request.RequestUri!.PathAndQuery);

            // :authority names the peer, so every hostname shares one connection to it; the visitor's
            // host travels in X-Forwarded-Host, which the peer restores.
            request.Headers.Host = null;
            request.Headers.TryAddWithoutValidation(PeerRequests.HopHeader, forwarder._options.Name);
            return request;
        }

        public bool MaySendAgain(HttpContext context, HttpRequestException ex) => IsNotProcessed(ex);

        public void SendingAgain(HttpRequestException ex)
        {
            var peer = _current!;
            peer.Failed();
            _tried.Add(peer);
            forwarder._clusterMetrics?.Forwarded(peer.Name, reached: false);
            ClusterLog.PeerForwardFailed(forwarder._logger, RequestId, host, peer.Name, Describe(ex));
        }

        public ForwarderFailure Failed(HttpRequestException ex)
        {
            var peer = _current!;
            peer.Failed();
            forwarder._clusterMetrics?.Forwarded(peer.Name, reached: false);
            return new(ForwarderError.PeerRequest) { Exception = ex, Peer = peer.Name };
        }

        public void Answered()
        {
            var peer = _current!;
            peer.CountForwarded();
            forwarder._clusterMetrics?.Forwarded(peer.Name, reached: true);
            ClusterLog.RequestForwarded(forwarder._logger, RequestId, host, peer.Name);
        }

        public void Release()
        {
        }

        public void CopyResponseHeaders(HttpResponseMessage upstream, IHeaderDictionary to, bool withContentHeaders) =>
            CopyHeaderCollections(upstream, to, withContentHeaders);
    }
}
