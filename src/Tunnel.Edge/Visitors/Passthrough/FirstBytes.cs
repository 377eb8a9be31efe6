namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>How far reading a connection's first bytes got.</summary>
internal enum SniffStatus
{
    /// <summary>The bytes so far are a valid beginning; read more.</summary>
    NeedMore,

    /// <summary>The name the visitor asks for was found (it may be <c>null</c>: a ClientHello without SNI).</summary>
    Found,

    /// <summary>The bytes are not this protocol at all.</summary>
    Other,

    /// <summary>The bytes are this protocol but broken, or past the size allowed for the part read.</summary>
    Malformed,
}

/// <summary>
/// What a connection's first bytes said: the status and, when found, the host the visitor asks for
/// (lower case, without port or trailing dot), or why the bytes were refused; and whether they began
/// with the HTTP/2 preface (h2c by prior knowledge).
/// </summary>
internal readonly record struct SniffResult(SniffStatus Status, string? Host = null, string? Reason = null, bool Http2 = false)
{
    public static SniffResult NeedMore { get; } = new(SniffStatus.NeedMore);

    public static SniffResult Other { get; } = new(SniffStatus.Other);

    public static SniffResult Found(string? host) => new(SniffStatus.Found, host);

    public static SniffResult Malformed(string reason) => new(SniffStatus.Malformed, Reason: reason);
}
