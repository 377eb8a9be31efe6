namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// An HTTP/2 client handler for one tunnel connection: every request goes as a stream on the one
/// connection over the given stream (prior knowledge, no ALPN or upgrade). It stands in for
/// SocketsHttpHandler, whose pool, diagnostics and per-request flush the edge does not need: frames
/// from all requests are batched into shared writes, and an idle connection holds no buffers.
/// </summary>
internal sealed class TunnelHttp2Handler : HttpMessageHandler
{
    private readonly Http2Connection _connection;

    /// <summary>Starts the connection at once: the preface and SETTINGS go out, the reader waits for frames.</summary>
    public TunnelHttp2Handler(Stream stream, Http2ClientSettings settings, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(time);
        _connection = new Http2Connection(stream, settings, time);
    }

    /// <summary>Completes when the origin sent GOAWAY: the connection takes no new requests.</summary>
    public Task GoAwayReceived => _connection.GoAwayReceived;

    /// <summary>Whether a new request may start on the connection (it is open and the origin has not sent GOAWAY).</summary>
    public bool IsUsable => _connection.IsUsable;

    /// <summary>Streams open now.</summary>
    public int ActiveStreams => _connection.ActiveStreams;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return _connection.SendAsync(request, cancellationToken);
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken) =>
        SendAsync(request, cancellationToken).GetAwaiter().GetResult();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _connection.Dispose();
        }

        base.Dispose(disposing);
    }
}
