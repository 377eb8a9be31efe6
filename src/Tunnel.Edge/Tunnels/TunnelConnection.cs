using System.Net;
using System.Net.Security;
using Tunnel.Edge.Tunnels.Http2;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// One registered tunnel connection, seen from the edge: an HTTP/2 client (the edge) over the TLS
/// stream the origin dialed. Its <see cref="TunnelHttp2Handler"/> speaks HTTP/2 on exactly that
/// stream, so every request on it is a stream of that one connection.
/// </summary>
internal sealed class TunnelConnection : IAsyncDisposable
{
    // The most a response's headers may take (decoded): more is the origin misbehaving, and the
    // visitor gets a 502 rather than the edge holding it.
    private const int MaxResponseHeaderBytes = 64 * 1024;

    private readonly SslStream _tls;
    private readonly ObservedStream _stream;
    private readonly TunnelHttp2Handler _handler;
    private int _inFlight;
    private long _requests;

    internal TunnelConnection(string id, string connectorId, int connectionIndex, IReadOnlyList<string> hostnames, EndPoint? remote, SslStream stream, EdgeOptions options, TimeProvider time, string credentialId = "", IReadOnlyList<ConnectionRoute>? connectionRoutes = null)
    {
        ConnectionRoutes = connectionRoutes ?? [];
        CredentialId = credentialId;
        Id = id;
        ConnectorId = connectorId;
        ConnectionIndex = connectionIndex;
        Hostnames = hostnames;
        Remote = remote;
        ConnectedAt = time.GetUtcNow();
        _tls = stream;
        _stream = new ObservedStream(stream);
        _handler = new TunnelHttp2Handler(_stream, new Http2ClientSettings
        {
            // How much of each response the origin may send before the edge grants more (Limits:
            // TunnelStreamWindowSize, 1 MiB by default): the HTTP client's default, 64 KiB, grows with its
            // RTT estimate only after a download has stalled on it a few times. Memory is taken only for
            // bytes the visitor has not read yet, as with any window.
            StreamWindowSize = options.Limits.TunnelStreamWindowSize,
            ConnectionWindowSize = options.Limits.TunnelConnectionWindowSize,
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            MaxResponseHeaderBytes = MaxResponseHeaderBytes,
            StreamWaitTimeout = options.Limits.StreamWaitTimeout,
            OriginFault = (errorType, reason) => OriginFaulted?.Invoke(this, errorType, reason),
        }, time);
        Invoker = new HttpMessageInvoker(_handler, disposeHandler: false);
    }

    /// <summary>
    /// Every request on a tunnel uses this scheme and authority in its URI; only its path and query
    /// matter. The visitor's host travels in the Host header (HTTP/2 <c>:authority</c>).
    /// </summary>
    internal const string RequestUriPrefix = "http://tunnel";

    /// <summary>Whether OpenSSL frees this connection's record buffers while it is idle (tests).</summary>
    internal bool ReleasesIdleTlsBuffers => TlsBufferRelease.IsApplied(_tls);

    /// <summary>The id the edge gave this connection.</summary>
    public string Id { get; }

    /// <summary>The origin process (replica) that dialed it.</summary>
    public string ConnectorId { get; }

    /// <summary>The origin's slot index for this connection.</summary>
    public int ConnectionIndex { get; }

    /// <summary>The id of the credential it registered with: its client certificate's serial, upper-case hex.</summary>
    public string CredentialId { get; }

    /// <summary>The hostnames registered on it.</summary>
    public IReadOnlyList<string> Hostnames { get; }

    /// <summary>The hostnames whose visitor connections (not requests) it takes, each with its mode.</summary>
    public IReadOnlyList<ConnectionRoute> ConnectionRoutes { get; }

    /// <summary>The hostnames it takes visitor connections for in <paramref name="mode"/>.</summary>
    internal IReadOnlyList<string> HostnamesFor(ConnectionMode mode) =>
        ConnectionRoutes.Count == 0 ? [] : ConnectionRoutes.Where(r => r.Mode == mode).Select(r => r.Hostname).ToArray();

    /// <summary>The origin's address as the edge sees it.</summary>
    public EndPoint? Remote { get; }

    /// <summary>When it registered.</summary>
    public DateTimeOffset ConnectedAt { get; }

    /// <summary>Requests being forwarded on it now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Requests forwarded on it since it registered.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Completes when the underlying stream is closed or has failed: the connection is gone.</summary>
    public Task Closed => _stream.Closed;

    /// <summary>Whether new requests may be sent on it.</summary>
    public bool IsUsable => IsAlive && !IsNotReady;

    /// <summary>
    /// Whether the tunnel itself still serves (open, not draining, not silent), whatever the app's
    /// readiness: a not-ready connection is alive, and what fails on it is not a lost tunnel.
    /// </summary>
    public bool IsAlive => !_stream.Closed.IsCompleted && !IsDraining && !IsSilent && _handler.IsUsable;

    /// <summary>Completes when the origin sent GOAWAY: the connection finishes what it has and takes nothing new.</summary>
    public Task GoAwayReceived => _handler.GoAwayReceived;

    /// <summary>Set once the connection must take no new requests (the origin is going away, or it failed).</summary>
    public bool IsDraining { get; private set; }

    /// <summary>
    /// Set while the origin's anchor heartbeat has been silent for longer than
    /// <see cref="Protocol.TunnelLimits.AnchorSilenceLimit"/>: the tunnel may be black-holed, so new
    /// requests go elsewhere until the heartbeat returns or the PING timeout closes it.
    /// </summary>
    public bool IsSilent { get; private set; }

    /// <summary>
    /// Set while the origin says its app is not ready (<see cref="Protocol.AnchorBeat.NotReady"/> on the
    /// anchor): new requests go elsewhere, those in flight finish, and the next ready beat undoes it.
    /// </summary>
    public bool IsNotReady { get; private set; }

    /// <summary>Applies the readiness an anchor beat carries; returns whether it changed.</summary>
    internal bool SetReady(bool ready)
    {
        var changed = IsNotReady == ready;
        IsNotReady = !ready;
        return changed;
    }

    /// <summary>Cancelled to tell the origin to move this connection elsewhere (the edge is draining).</summary>
    internal CancellationTokenSource AnchorCancellation { get; } = new();

    private long _lastHeartbeat;

    internal void RecordHeartbeat(long timestamp)
    {
        Volatile.Write(ref _lastHeartbeat, timestamp);
        IsSilent = false;
    }

    /// <summary>Marks the connection silent when its anchor has not beaten within the limit; returns whether it is.</summary>
    internal bool CheckHeartbeat(TimeProvider time)
    {
        var last = Volatile.Read(ref _lastHeartbeat);
        if (last != 0 && time.GetElapsedTime(last) > Protocol.TunnelLimits.AnchorSilenceLimit)
        {
            IsSilent = true;
        }

        return IsSilent;
    }

    /// <summary>Asks the origin to dial a replacement at another edge and then close this connection.</summary>
    public void RequestMove()
    {
        try
        {
            AnchorCancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    internal HttpMessageInvoker Invoker { get; }

    /// <summary>
    /// Raised once when the edge ends the connection because the origin broke HTTP/2 or a bound on it
    /// (a flood, a write it never read): the <c>error.type</c> and the reason. Raised on the
    /// connection's own loop; handlers must not block.
    /// </summary>
    internal event Action<TunnelConnection, string, string>? OriginFaulted;

    /// <summary>Stops choosing this connection for new requests.</summary>
    public void MarkDraining() => IsDraining = true;

    internal void RequestStarted()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
    }

    internal void RequestFinished() => Interlocked.Decrement(ref _inFlight);

    /// <summary>Counts a request unless <paramref name="limit"/> are already in flight; <c>null</c> is no cap.</summary>
    internal bool TryRequestStarted(int? limit)
    {
        if (limit is not { } max)
        {
            RequestStarted();
            return true;
        }

        var current = Volatile.Read(ref _inFlight);
        while (current < max)
        {
            var seen = Interlocked.CompareExchange(ref _inFlight, current + 1, current);
            if (seen == current)
            {
                Interlocked.Increment(ref _requests);
                return true;
            }

            current = seen;
        }

        return false;
    }

    /// <summary>
    /// Closes the connection at once. <see cref="Invoker"/> is left undisposed on purpose: a request
    /// that picked this connection just before it closed then fails as not processed (the handler's
    /// closed connection), which the forwarder retries on another, rather than with the invoker's
    /// ObjectDisposedException, which nobody expects and which reached the visitor as a bare 500. The
    /// invoker holds nothing of its own; the handler and the stream are disposed here.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        MarkDraining();
        _handler.Dispose();
        _stream.Dispose();
        return ValueTask.CompletedTask;
    }
}
