namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>What a <see cref="TunnelHttp2Handler"/> asks of its connection.</summary>
internal sealed record Http2ClientSettings
{
    /// <summary>How much of each response the origin may send before the edge grants more (SETTINGS_INITIAL_WINDOW_SIZE).</summary>
    public int StreamWindowSize { get; init; } = 1024 * 1024;

    /// <summary>
    /// How much of all responses together the origin may send ahead. Large enough never to be the limit
    /// before a stream's window is; memory is taken only for what visitors have not read yet.
    /// </summary>
    public int ConnectionWindowSize { get; init; } = 16 * 1024 * 1024;

    /// <summary>The most a response's header block may decode to (names, values and 32 per field, as RFC 9113 counts).</summary>
    public int MaxResponseHeaderBytes { get; init; } = 64 * 1024;

    /// <summary>Silence from the origin after which a PING goes out; <see cref="Timeout.InfiniteTimeSpan"/> for none.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>How long a PING may go unanswered (with no other frame either) before the connection is dropped.</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// How long a request may wait for a stream while MAX_CONCURRENT_STREAMS are open; then it fails
    /// with <see cref="Http2Errors.NoStreamFree"/>, not processed. <see cref="Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan StreamWaitTimeout { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// Told once when the edge ends the connection because the origin broke HTTP/2 or one of the edge's
    /// bounds on it: the <c>error.type</c> (<c>control_flood</c>, <c>idle_stream</c>, <c>write_stalled</c>...)
    /// and a message. Called on the connection's own loop or timer; it must not block.
    /// </summary>
    public Action<string, string>? OriginFault { get; init; }
}
