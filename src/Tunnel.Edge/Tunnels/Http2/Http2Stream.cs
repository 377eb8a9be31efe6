using System.Buffers;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// One request/response exchange on an <see cref="Http2Connection"/>. Every field is guarded by the
/// connection's lock (<see cref="Http2Connection.Sync"/>), which the reader loop, the writer loop and
/// the request's own tasks share, so buffers handed between them have one owner at a time. The
/// stream decodes its own header blocks (<see cref="IHpackHeaderSink"/>): the connection's reader loop
/// only gathers a block's frames and routes it here.
/// </summary>
internal sealed class Http2Stream : IHpackHeaderSink
{
    private readonly Http2Connection _connection;
    private readonly AsyncSignal _readSignal;
    private AsyncSignal? _windowSignal;
    private CancellationTokenSource? _bodyCancellation;

    // Response bytes received and not yet read: [_dataStart, _dataEnd) of a rented buffer.
    private byte[]? _data;
    private int _dataStart;
    private int _dataEnd;
    private int _unackedConsumed;
    private bool _responseDisposed;

    // The header block being decoded: touched by the reader loop alone, between BeginHeaderBlock and
    // EndHeaderBlockLocked, which publishes the outcome under the lock.
    private RecentHeaderValues? _recentValues;
    private int _maxHeaderBytes;
    private bool _decodingTrailers;
    private HttpResponseMessage? _pendingResponse;
    private int _status;
    private int _headerBytes;
    private bool _regularFieldSeen;
    private string? _malformed;

    public Http2Stream(Http2Connection connection, HttpRequestMessage request, bool isExtendedConnect)
    {
        _connection = connection;
        Request = request;
        IsExtendedConnect = isExtendedConnect;
        if (request is Http2FieldsRequest)
        {
            // Room for an ordinary response's fields without growing.
            ResponseFields = new(8);
        }
        _readSignal = new AsyncSignal(connection.Sync);
    }

    public HttpRequestMessage Request { get; }

    public bool IsExtendedConnect { get; }

    /// <summary>
    /// For an <see cref="Http2FieldsRequest"/>, the final response's fields as they came, filled by the
    /// reader loop before the response is published; otherwise null and the fields go to the response's
    /// header collections.
    /// </summary>
    public List<KeyValuePair<string, string>>? ResponseFields { get; }

    /// <summary>Whether trailers came (set by the reader loop before the stream's end is published).</summary>
    public bool HasTrailers { get; set; }

    public int Id { get; set; }

    /// <summary>Set by the reader loop once final response headers arrived; read by others under the lock.</summary>
    public HttpResponseMessage? Response { get; set; }

    /// <summary>END_STREAM sent, or the stream was reset.</summary>
    public bool SendClosed { get; set; }

    /// <summary>END_STREAM received, or the stream was reset.</summary>
    public bool ReceiveClosed { get; set; }

    /// <summary>Why the stream failed, once it did: what its reader and writer see.</summary>
    public Exception? Failure { get; private set; }

    public long SendWindow { get; set; }

    public int ReceiveWindow { get; set; }

    /// <summary>Still in the connection's table (not both sides closed).</summary>
    public bool IsOpen { get; set; }

    /// <summary>The most bytes that were ever buffered unread at once (bounded by the stream window).</summary>
    public int PeakBuffered { get; private set; }

    /// <summary>Bytes buffered and not read; under the lock.</summary>
    public int Buffered => _dataEnd - _dataStart;

    /// <summary>The signal a request body writer waits on for window; created on first use.</summary>
    public AsyncSignal WindowSignal => _windowSignal ??= new AsyncSignal(_connection.Sync);

    /// <summary>Waits for the response headers. The stream is reset if the wait is cancelled.</summary>
    public async Task<HttpResponseMessage> ReadResponseHeadersAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ValueTask wait;
            lock (_connection.Sync)
            {
                if (Response is { } response)
                {
                    return response;
                }

                if (Failure is { } failure)
                {
                    throw Http2Errors.ForSend(failure);
                }

                wait = _readSignal.WaitAsync(cancellationToken);
            }

            try
            {
                await wait.ConfigureAwait(false);
            }
            catch (OperationCanceledException ex)
            {
                _connection.ResetStream(this, Http2ErrorCode.Cancel, ex);
                throw;
            }
        }
    }

    /// <summary>Starts serializing the request content; runs alongside the wait for the response.</summary>
    public void StartSendingBody(HttpContent content, CancellationToken cancellationToken)
    {
        _bodyCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _ = SendBodyAsync(content, _bodyCancellation.Token);
    }

    private async Task SendBodyAsync(HttpContent content, CancellationToken cancellationToken)
    {
        try
        {
            await content.CopyToAsync(new Http2RequestBodyStream(this), cancellationToken).ConfigureAwait(false);
            _connection.EndRequestBody(this);
        }
        catch (Exception ex)
        {
            _connection.ResetStream(this, Http2ErrorCode.Cancel, ex);
        }
    }

    /// <summary>Sends request body bytes as DATA within the windows (a body stream or a duplex response stream).</summary>
    public ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken) =>
        _connection.WriteDataAsync(this, buffer, cancellationToken);

    /// <summary>Ends the request side (END_STREAM) of a duplex stream whose bytes were sent with <see cref="WriteAsync"/>.</summary>
    public void EndSending() => _connection.EndRequestBody(this);

    /// <summary>Reads response body bytes; 0 once the origin ended the stream.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (true)
        {
            ValueTask wait;
            lock (_connection.Sync)
            {
                ObjectDisposedException.ThrowIf(_responseDisposed, typeof(HttpResponseMessage));
                if (Buffered > 0)
                {
                    if (buffer.Length == 0)
                    {
                        return 0;
                    }

                    var count = Math.Min(buffer.Length, Buffered);
                    _data.AsSpan(_dataStart, count).CopyTo(buffer.Span);
                    _dataStart += count;
                    if (_dataStart == _dataEnd)
                    {
                        ReleaseDataLocked();
                    }

                    _connection.OnConsumedLocked(this, count);
                    return count;
                }

                if (Failure is { } failure)
                {
                    throw Http2Errors.ForRead(failure);
                }

                if (ReceiveClosed)
                {
                    return 0;
                }

                wait = _readSignal.WaitAsync(cancellationToken);
            }

            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>Appends a DATA payload from the reader loop; under the lock.</summary>
    public void AppendDataLocked(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        if (_data is null)
        {
            _data = ArrayPool<byte>.Shared.Rent(Math.Max(data.Length, 4096));
            _dataStart = _dataEnd = 0;
        }
        else if (_data.Length - _dataEnd < data.Length)
        {
            var buffered = Buffered;
            var target = _data;
            if (buffered + data.Length > _data.Length)
            {
                target = ArrayPool<byte>.Shared.Rent(Math.Max(_data.Length * 2, buffered + data.Length));
            }

            _data.AsSpan(_dataStart, buffered).CopyTo(target);
            if (!ReferenceEquals(target, _data))
            {
                ArrayPool<byte>.Shared.Return(_data);
                _data = target;
            }

            _dataStart = 0;
            _dataEnd = buffered;
        }

        data.CopyTo(_data.AsSpan(_dataEnd));
        _dataEnd += data.Length;
        PeakBuffered = Math.Max(PeakBuffered, Buffered);
    }

    /// <summary>Counts consumed bytes toward a stream WINDOW_UPDATE; returns the increment to send now, or 0.</summary>
    public int TakeWindowCreditLocked(int consumed, int windowSize)
    {
        _unackedConsumed += consumed;
        if (ReceiveClosed || _unackedConsumed < windowSize / 2)
        {
            return 0;
        }

        var credit = _unackedConsumed;
        _unackedConsumed = 0;
        return credit;
    }

    /// <summary>Wakes whoever waits to read (headers, data or the end).</summary>
    public void WakeReaderLocked() => _readSignal.Set();

    /// <summary>Records the failure once and wakes everyone waiting on the stream; under the lock.</summary>
    public void FailLocked(Exception failure)
    {
        Failure ??= failure;
        _readSignal.Set();
        _windowSignal?.Set();
    }

    /// <summary>Drops unread bytes; returns how many, so the connection window gets them back.</summary>
    public int DiscardDataLocked()
    {
        var dropped = Buffered;
        ReleaseDataLocked();
        return dropped;
    }

    private void ReleaseDataLocked()
    {
        if (_data is { } data)
        {
            _data = null;
            _dataStart = _dataEnd = 0;
            ArrayPool<byte>.Shared.Return(data);
        }
    }

    /// <summary>Takes the request body's cancellation to cancel it outside the lock; null if there is none or it is done.</summary>
    public CancellationTokenSource? TakeBodyCancellationLocked()
    {
        var cancellation = _bodyCancellation;
        _bodyCancellation = null;
        return cancellation;
    }

    /// <summary>The response (or its content stream) was disposed: whatever is still open is reset.</summary>
    public void OnResponseDisposed()
    {
        lock (_connection.Sync)
        {
            if (_responseDisposed)
            {
                return;
            }

            _responseDisposed = true;

            // The usual end: both sides closed, every byte read, no request body running. There is nothing
            // to reset or give back, and nobody waits (reads see the disposal, writes the closed side).
            if (!IsOpen && SendClosed && ReceiveClosed && Buffered == 0 && _bodyCancellation is null)
            {
                return;
            }
        }

        _connection.ResetStream(this, Http2ErrorCode.Cancel, new ObjectDisposedException(nameof(HttpResponseMessage)));
    }

    /// <summary>A response message for final headers with this status.</summary>
    public HttpResponseMessage CreateResponse(int status) => new((HttpStatusCode)status)
    {
        Version = HttpVersion.Version20,
        RequestMessage = Request,
        Content = new Http2ResponseContent(this),
    };

    /// <summary>
    /// Starts decoding a header block (reader loop only): the response's headers, an informational
    /// response's, or the trailers once the response came. Fields past <paramref name="maxBytes"/>
    /// (counted as SETTINGS_MAX_HEADER_LIST_SIZE counts them) are decoded for HPACK's sake and dropped.
    /// </summary>
    public void BeginHeaderBlock(int maxBytes, RecentHeaderValues recentValues)
    {
        _maxHeaderBytes = maxBytes;
        _recentValues = recentValues;
        _decodingTrailers = Response is not null;
        _pendingResponse = Response;
        _status = -1;
        _headerBytes = 0;
        _regularFieldSeen = false;
        _malformed = null;
    }

    /// <summary>
    /// Ends the block <see cref="BeginHeaderBlock"/> started; under the lock. A final response is
    /// published as <see cref="Response"/>; a block that is too large or malformed says so, for the
    /// connection to reset the stream (<paramref name="malformed"/> names what was wrong).
    /// </summary>
    public HeaderBlockOutcome EndHeaderBlockLocked(bool endStream, out string? malformed)
    {
        var response = _pendingResponse;
        _pendingResponse = null;
        _recentValues = null;
        malformed = null;
        if (_headerBytes > _maxHeaderBytes)
        {
            return HeaderBlockOutcome.TooLarge;
        }

        malformed = _malformed ?? (_decodingTrailers ? TrailersProblem(endStream) : ResponseProblem(_status, endStream));
        if (malformed is not null)
        {
            return HeaderBlockOutcome.Malformed;
        }

        if (_decodingTrailers)
        {
            return HeaderBlockOutcome.Trailers;
        }

        if (_status < 200)
        {
            // 1xx: the final response follows.
            return HeaderBlockOutcome.Informational;
        }

        Response = response ?? CreateResponse(_status);
        return HeaderBlockOutcome.Response;
    }

    private static string? TrailersProblem(bool endStream) =>
        endStream ? null : "a second header block that does not end the stream";

    private static string? ResponseProblem(int status, bool endStream) => status switch
    {
        < 0 => "no :status",
        101 => "status 101, which HTTP/2 does not allow",
        < 200 when endStream => "an informational response that ends the stream",
        _ => null,
    };

    void IHpackHeaderSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex)
    {
        _headerBytes += name.Length + value.Length + 32;
        if (_malformed is not null || _headerBytes > _maxHeaderBytes)
        {
            return;
        }

        if (name[0] == (byte)':')
        {
            OnPseudoHeader(name, value);
            return;
        }

        _regularFieldSeen = true;
        if (!_decodingTrailers && _status is >= 100 and < 200)
        {
            // An informational response's fields are not passed on.
            return;
        }

        if (!_decodingTrailers && _pendingResponse is null)
        {
            if (_status < 0)
            {
                _malformed = "fields before :status";
                return;
            }

            _pendingResponse = CreateResponse(_status);
        }

        var headerName = staticNameIndex != 0 ? HpackStaticTable.Name(staticNameIndex) : Encoding.Latin1.GetString(name);
        var headerValue = value.IsEmpty ? string.Empty : staticNameIndex != 0 ? _recentValues!.Get(staticNameIndex, value) : Encoding.Latin1.GetString(value);
        AddField(_pendingResponse!, headerName, headerValue);
    }

    void IHpackHeaderSink.OnFieldTooLarge(int atLeastBytes) =>
        _headerBytes = (int)Math.Min(int.MaxValue, (long)_headerBytes + atLeastBytes + 32);

    private void OnPseudoHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (_decodingTrailers || _regularFieldSeen || !name.SequenceEqual(":status"u8) || _status >= 0)
        {
            _malformed = "a misplaced or unknown pseudo-header";
            return;
        }

        if (value.Length != 3 || !int.TryParse(value, System.Globalization.NumberStyles.None, null, out var status) || status < 100)
        {
            _malformed = "an invalid :status";
            return;
        }

        _status = status;
    }

    private void AddField(HttpResponseMessage response, string name, string value)
    {
        if (_decodingTrailers)
        {
            HasTrailers = true;
            response.TrailingHeaders.TryAddWithoutValidation(name, value);
        }
        else if (ResponseFields is { } fields)
        {
            fields.Add(new(name, value));
        }
        else if (!response.Headers.TryAddWithoutValidation(name, value))
        {
            response.Content.Headers.TryAddWithoutValidation(name, value);
        }
    }
}

/// <summary>What a header block was, once decoded: see <see cref="Http2Stream.EndHeaderBlockLocked"/>.</summary>
internal enum HeaderBlockOutcome
{
    /// <summary>The final response's headers: the response is published.</summary>
    Response,

    /// <summary>A 1xx response's headers: the final response follows.</summary>
    Informational,

    /// <summary>The trailers, which end the stream.</summary>
    Trailers,

    /// <summary>Fields past the edge's response header limit.</summary>
    TooLarge,

    /// <summary>A block RFC 9113 section 8.1.1 calls malformed.</summary>
    Malformed,
}
