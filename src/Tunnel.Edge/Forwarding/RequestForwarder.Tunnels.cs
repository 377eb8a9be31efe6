using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Access;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Forwarding;

/// <summary>The tunnel connections a request may be sent down, for the attempt loop.</summary>
internal sealed partial class RequestForwarder
{
    /// <summary>
    /// The tunnel connections for the host, as the route table picks them. A connection at its cap of requests
    /// in flight is passed over and does not count as an attempt; one lost under the request is marked
    /// draining and passed over; one whose origin refused the stream (at its stream limit) is only passed over.
    /// </summary>
    private sealed class TunnelRoute : IForwardRoute
    {
        private readonly RequestForwarder _forwarder;
        private readonly HttpContext _context;
        private readonly string _host;
        private readonly TunnelConnection? _firstPick;
        private bool _tookFirstPick;
        private TunnelConnection? _current;
        private TunnelConnection? _failed;
        private List<TunnelConnection>? _skipped; // Made on the first skip: most requests take the first pick.
        private bool _sawFull;

        public TunnelRoute(RequestForwarder forwarder, HttpContext context, string host)
        {
            _forwarder = forwarder;
            _context = context;
            _host = host;
            _firstPick = forwarder._routes.Pick(host);
        }

        /// <summary>Whether no tunnel connection serves the host (then a peer edge may).</summary>
        public bool IsEmpty => _firstPick is null;

        public int MaxAttempts => RequestForwarder.MaxAttempts;

        public HttpMessageInvoker Invoker => _current!.Invoker;

        public bool TryTake(out ForwarderFailure exhausted)
        {
            var limit = EdgeRequestFeature.For(_context).Policy.MaxConcurrentRequestsPerConnection;
            while (NextPick() is { } connection)
            {
                if (connection.TryRequestStarted(limit))
                {
                    _current = connection;
                    exhausted = default;
                    return true;
                }

                // Full (another request took its last place since it was picked): try the others.
                (_skipped ??= []).Add(connection);
                _sawFull = true;
            }

            // With no other connection left, a visitor some connection was full for is told the site is busy (503).
            exhausted = _sawFull ? new(ForwarderError.TunnelsFull) { Full = _skipped?.Count ?? 0 }
                : _failed is null ? _forwarder.NoTunnelFailure(_host) : new(ForwarderError.NoOtherTunnel);
            return false;
        }

        private TunnelConnection? NextPick()
        {
            if (!_tookFirstPick)
            {
                _tookFirstPick = true;
                return _firstPick;
            }

            return _forwarder._routes.Pick(_host, _skipped);
        }

        public HttpRequestMessage CreateRequest(HttpContext context, VisitorBody body, ResponseHeadersDeadline deadline, WebSocketUpgrade? webSocket) =>
            CreateTunnelRequest(context, body.Started, body.Replayable, deadline, webSocket);

        public bool MaySendAgain(HttpContext context, HttpRequestException ex) =>
            IsNotProcessed(ex) || IsRepeatable(context.Request.Method, ex, _current!);

        public void SendingAgain(HttpRequestException ex)
        {
            // The origin never saw this request, or it is idempotent and the tunnel under it was lost
            // before any answer: the visitor need not see the failure. A stream the origin refused (at
            // its stream limit) leaves the connection healthy: it is only skipped.
            if (Tunnels.Http2.Http2Errors.IsRefusedStream(ex))
            {
                _sawFull = true;
            }
            else
            {
                _current!.MarkDraining();
                _failed = _current;
            }

            (_skipped ??= []).Add(_current!);
            EdgeLog.RequestRetried(_forwarder._logger, EdgeRequestFeature.For(_context).RequestId, _host, ex.Message);
        }

        public ForwarderFailure Failed(HttpRequestException ex) => new(ForwarderError.TunnelRequest) { Exception = ex };

        public void Answered()
        {
        }

        public void Release() => _current!.RequestFinished();

        public void CopyResponseHeaders(HttpResponseMessage upstream, IHeaderDictionary to, bool withContentHeaders) =>
            // A tunnel stream answers a request written as fields with its fields, in the order they came.
            CopyResponseFields(Tunnels.Http2.Http2ResponseFields.Of(upstream) ?? throw new InvalidOperationException("A tunnel response without its field list."), to);
    }
}
