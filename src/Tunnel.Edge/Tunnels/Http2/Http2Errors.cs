namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// Turns why a stream failed into what its caller sees, shaped as SocketsHttpHandler shapes it, since
/// the forwarder decides retries from it: <see cref="HttpRequestError.ConnectionError"/> means the
/// origin certainly did not process the request, <see cref="HttpProtocolException"/> that the origin
/// reset the stream, <see cref="HttpRequestError.ResponseEnded"/> that the connection was lost.
/// </summary>
internal static class Http2Errors
{
    public static HttpRequestException NotProcessed(string message, Exception? inner = null) =>
        new(HttpRequestError.ConnectionError, message, inner);

    /// <summary>
    /// The origin refused the stream (REFUSED_STREAM): not processed, and the connection is fine. The
    /// inner <see cref="HttpProtocolException"/> carries the code, so callers can tell it from a lost
    /// connection (see <see cref="IsRefusedStream"/>).
    /// </summary>
    public static HttpRequestException Refused() =>
        NotProcessed("The origin refused the stream (REFUSED_STREAM); the request was not processed.",
            new HttpProtocolException((long)Http2ErrorCode.RefusedStream, "REFUSED_STREAM", null));

    /// <summary>Whether <paramref name="ex"/> is <see cref="Refused"/>'s.</summary>
    public static bool IsRefusedStream(HttpRequestException ex) =>
        ex.HttpRequestError == HttpRequestError.ConnectionError
        && ex.InnerException is HttpProtocolException { ErrorCode: (long)Http2ErrorCode.RefusedStream };

    /// <summary>
    /// No stream came free within the wait the settings allow: not processed, and the connection is
    /// fine, only full (see <see cref="IsNoStreamFree"/>).
    /// </summary>
    public static HttpRequestException NoStreamFree(TimeSpan waited) =>
        NotProcessed($"No stream came free on the tunnel connection within {waited.TotalSeconds:0.###} s; the request was not sent.", new NoStreamFreeException());

    /// <summary>Whether <paramref name="ex"/> is <see cref="NoStreamFree"/>'s.</summary>
    public static bool IsNoStreamFree(HttpRequestException ex) =>
        ex.HttpRequestError == HttpRequestError.ConnectionError && ex.InnerException is NoStreamFreeException;

    /// <summary>An error code as an <c>error.type</c> value: <c>protocol_error</c>, <c>enhance_your_calm</c>...</summary>
    public static string TypeOf(Http2ErrorCode code) => code switch
    {
        Http2ErrorCode.ProtocolError => "protocol_error",
        Http2ErrorCode.FlowControlError => "flow_control_error",
        Http2ErrorCode.FrameSizeError => "frame_size_error",
        Http2ErrorCode.CompressionError => "compression_error",
        Http2ErrorCode.EnhanceYourCalm => "enhance_your_calm",
        _ => "http2_error",
    };

    public static HttpIOException ConnectionLost(Exception cause) =>
        new(HttpRequestError.ResponseEnded, $"The tunnel connection was lost: {cause.Message}", cause);

    /// <summary>For the caller of SendAsync, waiting for the response headers.</summary>
    public static Exception ForSend(Exception failure) => failure switch
    {
        HttpRequestException or OperationCanceledException => failure,
        HttpProtocolException protocol => new HttpRequestException(HttpRequestError.HttpProtocolError, protocol.Message, protocol),
        HttpIOException io => new HttpRequestException(io.HttpRequestError, io.Message, io),
        _ => new HttpRequestException(HttpRequestError.Unknown, $"Sending the request content failed: {failure.Message}", failure),
    };

    /// <summary>For a reader of the response body.</summary>
    public static Exception ForRead(Exception failure) => failure switch
    {
        IOException or OperationCanceledException or ObjectDisposedException => failure,
        HttpRequestException request => new HttpIOException(request.HttpRequestError, request.Message, request),
        _ => new HttpIOException(HttpRequestError.Unknown, $"Sending the request content failed: {failure.Message}", failure),
    };
}

/// <summary>Marks <see cref="Http2Errors.NoStreamFree"/>'s exception.</summary>
internal sealed class NoStreamFreeException() : Exception("Every stream the origin allows is open.");
