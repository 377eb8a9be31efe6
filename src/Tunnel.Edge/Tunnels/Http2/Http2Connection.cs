namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// An HTTP/2 client connection (RFC 9113) over a stream that is already connected: the tunnel's TLS
/// stream the origin dialed. One reader loop reads and dispatches frames; one writer loop sends
/// whatever frames every stream has queued since its last write as one write and one flush, so
/// concurrent requests share TLS records and syscalls. Neither loop holds a buffer while idle. Each
/// stream decodes its own header blocks; the connection routes frames, keeps the stream table, the
/// windows and the write buffer. Its parts, by concern: Reading (the reader loop and frame
/// dispatch), Headers (header blocks), Settings, FlowControl (DATA both ways, windows), Streams (the
/// stream table and slots), Writing (the write buffer and the writer loop), Lifetime (start,
/// keepalive, close).
/// </summary>
internal sealed partial class Http2Connection : IDisposable
{
    // The connection's window is topped up when half of it was read by consumers, a stream's likewise.
    private const int InitialPeerWindow = 65535;

    // The most a header block may take on the wire before it is decoded. Larger than any response
    // under the decoded limit, so an oversized response fails its own stream while HPACK stays in step.
    internal const int MaxHeaderBlockBytes = 1024 * 1024;

    /// <summary>
    /// The most CONTINUATION frames one header block may take: a block of <see cref="MaxHeaderBlockBytes"/>
    /// in frames of the size this end allows. Empty CONTINUATIONs grow no buffer, so without a count an
    /// endless chain of them (CVE-2024-27316) would hold the reader for ever; nghttp2 allows 8.
    /// </summary>
    internal const int MaxContinuationFrames = MaxHeaderBlockBytes / Http2FrameHeader.DefaultMaxFrameSize;

    /// <summary>
    /// Frames that change nothing (PRIORITY, unknown types, empty DATA, resets and window for streams
    /// already closed, acknowledgements nobody asked for) allowed per second. A healthy origin sends a
    /// few after a stream the edge reset; RFC 9113 section 10.5 lets an endpoint end a flood of them
    /// with ENHANCE_YOUR_CALM, since each costs the edge work and the origin nothing.
    /// </summary>
    internal const int MaxIdleFramesPerSecond = 1000;

    /// <summary>
    /// The most bytes of frames queued for the origin, in the write buffer and in the write under way,
    /// before the reader stops reading frames and request bodies wait: an origin that stops reading its
    /// socket while it sends PINGs, SETTINGS or window for uploads cannot grow the edge's memory past
    /// this (plus one frame's reply). 1 MiB is Kestrel's default connection window: a healthy origin
    /// reads that much ahead, so uploads are never held by it.
    /// </summary>
    internal const int MaxQueuedWriteBytes = 1024 * 1024;

    // Request bodies stop queueing at half of that, so uploads alone never hold the reader: only
    // answers the origin does not take fill the rest.
    private const int MaxQueuedDataBytes = MaxQueuedWriteBytes / 2;

    /// <summary>
    /// The most control replies (PING and SETTINGS acknowledgements) queued and not yet handed to the
    /// socket. An origin that makes the edge answer faster than it reads the answers (CVE-2019-9512,
    /// CVE-2019-9515) is told GOAWAY ENHANCE_YOUR_CALM past this many, as nghttp2 does at its default
    /// max_outbound_ack of 1000; a healthy origin waits for its ACK, so it never has more than a few.
    /// </summary>
    internal const int MaxPendingControlReplies = 1000;

    // How many times a request is opened when the origin refuses its stream (see StreamLimitFor).
    private const int RefusedStreamAttempts = 5;

    // How long a GOAWAY after a protocol error may take to go out before the connection is cut.
    private static readonly TimeSpan GoAwayGrace = TimeSpan.FromSeconds(1);

    private readonly Stream _stream;
    private readonly Http2ClientSettings _settings;
    private readonly TimeProvider _time;
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _goAwayReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ITimer? _keepAliveTimer;
    private int _started;
    private int _originFaultReported;
    private bool _closeAfterFlush;
    private bool _drainBeforeClose;
    private Exception? _abortError;
    private int _streamDisposed;

    // Reading: frames, header blocks (decoded by their streams), frames that change nothing.
    private readonly Http2FrameReader _reader;
    private readonly HpackDecoder _decoder;
    private readonly Http2HeaderBlock _headerBlock = new();
    private readonly RecentHeaderValues _recentValues = new();
    private bool _settingsAcknowledged;
    private int _idleFrames;
    private long _idleFramesSince;

    // The stream table and the slots MAX_CONCURRENT_STREAMS allows.
    private readonly Dictionary<int, Http2Stream> _streams = [];
    private readonly Queue<TaskCompletionSource<bool>> _slotWaiters = new();
    private int _nextStreamId = 1;
    private int _activeStreams;

    // Until the origin's SETTINGS arrive, assume the smallest limit RFC 9113 (section 6.5.2) recommends a
    // server allow, 100: a burst sent before them would otherwise meet a lower limit as refusals.
    private int _peerMaxConcurrentStreams = StreamLimitFor(100);
    private int _peerMaxFrameSize = Http2FrameHeader.DefaultMaxFrameSize;
    private bool _peerConnectProtocol;
    private bool _goAway;
    private int _goAwayLastStreamId = int.MaxValue;

    // Writing: frames queued since the last write, and the write under way (bytes handed to the stream,
    // not yet flushed) and since when, or 0.
    private readonly AsyncSignal _writerSignal;
    private readonly AsyncSignal _readerRoomSignal;
    private byte[]? _writeBuffer;
    private int _writeLength;
    private int _writingLength;
    private long _writeStartedTimestamp;
    private int _pendingControlReplies;

    // Flow control: request bodies waiting for window or for write room; the windows both ways.
    private readonly List<Http2Stream> _connectionWindowWaiters = [];
    private readonly List<Http2Stream> _writeRoomWaiters = [];
    private int _peerInitialWindow = InitialPeerWindow;
    private long _connectionSendWindow = InitialPeerWindow;
    private long _connectionReceiveWindow;
    private int _connectionUnackedConsumed;

    // Keepalive.
    private long _lastFrameTimestamp;
    private long _pingSentTimestamp;
    private bool _pingOutstanding;
    private long _pingPayload;

    public Http2Connection(Stream stream, Http2ClientSettings settings, TimeProvider time)
    {
        _stream = stream;
        _settings = settings;
        _time = time;
        _writerSignal = new AsyncSignal(Sync);
        _readerRoomSignal = new AsyncSignal(Sync);
        // No name or value is decoded past the response header limit: a longer one fails its stream anyway.
        _decoder = new HpackDecoder(maxStringLength: settings.MaxResponseHeaderBytes);
        _reader = new Http2FrameReader(stream, Http2FrameHeader.DefaultMaxFrameSize);
    }

    /// <summary>The one lock for the connection and all its streams.</summary>
    public object Sync { get; } = new();

    /// <summary>Completes when the origin sent GOAWAY: no new streams may start here.</summary>
    public Task GoAwayReceived => _goAwayReceived.Task;

    /// <summary>Whether a new request could start here now.</summary>
    public bool IsUsable => Volatile.Read(ref _abortError) is null && !Volatile.Read(ref _goAway);

    /// <summary>Streams open now.</summary>
    public int ActiveStreams
    {
        get
        {
            lock (Sync)
            {
                return _activeStreams;
            }
        }
    }

    /// <summary>Sends a request and returns once its final response headers arrived.</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        EnsureStarted();
        var extendedConnect = Http2RequestHeaders.ProtocolOf(request) is not null;
        if (extendedConnect)
        {
            // RFC 8441 section 3: only once the server's SETTINGS allowed it.
            await _settingsReceived.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!Volatile.Read(ref _peerConnectProtocol))
            {
                throw new HttpRequestException(HttpRequestError.ExtendedConnectNotSupported,
                    "The origin does not allow extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL), so the WebSocket cannot be opened through the tunnel.");
            }
        }

        var content = extendedConnect ? null : request.Content;
        for (var attempt = 1; ; attempt++)
        {
            var stream = new Http2Stream(this, request, extendedConnect);
            using (var block = Http2RequestHeaders.Encode(request, extendedConnect))
            {
                await OpenStreamAsync(stream, block, endStream: content is null && !extendedConnect, cancellationToken).ConfigureAwait(false);
            }

            if (content is not null)
            {
                stream.StartSendingBody(content, cancellationToken);
            }

            try
            {
                return await stream.ReadResponseHeadersAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex) when (content is null or ByteArrayContent && attempt < RefusedStreamAttempts && Http2Errors.IsRefusedStream(ex))
            {
                // Refused in the stream-retire lag (see StreamLimitFor): opened again after 1, 2, 4, 8 ms.
                await Task.Delay(TimeSpan.FromMilliseconds(1 << (attempt - 1)), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// How many streams to keep open for a server that allows <paramref name="advertised"/>: a tenth fewer
    /// (at least one fewer).
    /// </summary>
    /// <remarks>
    /// The stream-retire lag, which this margin and the retry in <see cref="SendAsync"/> answer: Kestrel
    /// counts a finished stream against MAX_CONCURRENT_STREAMS until its connection loop retires it, a
    /// moment after the stream's last frame went out, so a stream opened in that moment is refused
    /// (REFUSED_STREAM) although the count here was within the limit. The margin keeps bursts of
    /// requests clear of most of those refusals. A refused stream processed nothing, so a request
    /// without a body, or with one held in memory (the forwarder's replayable bodies), is sent again
    /// after 1, 2, 4, 8 ms, as SocketsHttpHandler does; a streamed body is not (it may have been read
    /// already): the caller sees the refusal (not processed) and decides.
    /// </remarks>
    internal static int StreamLimitFor(uint advertised) => advertised switch
    {
        0 => 0,
        1 => 1,
        _ => (int)Math.Min(advertised - Math.Max(1, advertised / 10), int.MaxValue),
    };

    public void Dispose() => Abort(new ObjectDisposedException(nameof(TunnelHttp2Handler), "The tunnel connection was closed by the edge."));
}
