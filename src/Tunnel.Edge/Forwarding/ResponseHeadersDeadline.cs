namespace Tunnel.Edge.Forwarding;

/// <summary>
/// Bounds how long the origin may take to send response headers once it has the whole request. The
/// clock starts when the request (body included) has been sent, so a slow upload is not cut, and stops
/// at the headers, so long responses and event streams are not cut either.
/// </summary>
internal sealed class ResponseHeadersDeadline : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly CancellationToken _visitorAborted;
    private readonly Lock _lock = new();
    private bool _headersReceived;
    private bool _disposed;

    public ResponseHeadersDeadline(TimeSpan timeout, CancellationToken visitorAborted)
    {
        Timeout = timeout;
        _visitorAborted = visitorAborted;
        _source = CancellationTokenSource.CreateLinkedTokenSource(visitorAborted);
    }

    public TimeSpan Timeout { get; }

    /// <summary>Cancelled when the visitor leaves or the deadline passes; kept alive for the whole exchange.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>Whether the deadline (not the visitor) cancelled <see cref="Token"/>.</summary>
    public bool Expired => _source.IsCancellationRequested && !_visitorAborted.IsCancellationRequested;

    /// <summary>The whole request is sent: the origin's time to answer starts.</summary>
    public void Start()
    {
        lock (_lock)
        {
            // A duplex body may end after the exchange is over and this is disposed.
            if (!_headersReceived && !_disposed)
            {
                _source.CancelAfter(Timeout);
            }
        }
    }

    /// <summary>The response headers arrived: no deadline any more.</summary>
    public void HeadersReceived()
    {
        lock (_lock)
        {
            _headersReceived = true;
            if (!_disposed)
            {
                _source.CancelAfter(System.Threading.Timeout.InfiniteTimeSpan);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _source.Dispose();
        }
    }
}
