namespace Tunnel.Edge.Forwarding;

/// <summary>
/// Every way the edge fails a visitor's request on its way to an origin and back. Each kind has one
/// status and page, one log event and one <c>error.type</c>, all reported by one step
/// (<see cref="RequestForwarder.FailAsync"/>), as YARP's <c>ForwarderError</c> and <c>ReportProxyError</c> do.
/// </summary>
internal enum ForwarderError
{
    /// <summary>The request names no host: 400, no <c>error.type</c>.</summary>
    NoHost,

    /// <summary>
    /// The visitor's own request is at fault (a malformed upgrade, a body over a limit or cut short):
    /// the status and reason it carries, no <c>error.type</c>.
    /// </summary>
    VisitorRequest,

    /// <summary>A small body read whole ended before its Content-Length: 400, no <c>error.type</c>.</summary>
    VisitorBodyShort,

    /// <summary>No tunnel connection (nor peer edge) serves the host: 502, <c>no_tunnel</c>.</summary>
    NoTunnel,

    /// <summary>The request's tunnel connection failed and no other is connected: 502, <c>connection_lost</c>.</summary>
    NoOtherTunnel,

    /// <summary>Every tunnel connection for the host reports its app not ready (and no peer edge took it): 503, <c>not_ready</c>.</summary>
    NotReady,

    /// <summary>Every tunnel connection for the host is at its cap of requests in flight: 503, <c>refused</c>.</summary>
    TunnelsFull,

    /// <summary>No stream came free on the tunnel connection within the wait: 503, <c>refused</c>.</summary>
    NoStreamFree,

    /// <summary>The origin sent no response headers within the deadline: 504, <c>timeout</c>.</summary>
    ResponseHeadersTimeout,

    /// <summary>The tunnel connection failed before the origin answered: 502, classified by the exception.</summary>
    TunnelRequest,

    /// <summary>No peer edge holding the route could be reached: 502, <c>connection_lost</c>.</summary>
    NoPeerAnswered,

    /// <summary>The peer edge failed before it answered: 502, classified by the exception.</summary>
    PeerRequest,

    /// <summary>The origin's response broke off after it began: the visitor's response is cut, <c>connection_lost</c>.</summary>
    ResponseBroken,
}

/// <summary>One failure to report: its kind and what its log line and page say about it.</summary>
/// <param name="Error">The kind, which decides status, page, log event and <c>error.type</c>.</param>
internal readonly record struct ForwarderFailure(ForwarderError Error)
{
    /// <summary>What failed (<see cref="ForwarderError.TunnelRequest"/>, <see cref="ForwarderError.PeerRequest"/>, <see cref="ForwarderError.ResponseBroken"/>).</summary>
    public Exception? Exception { get; init; }

    /// <summary>The status of a <see cref="ForwarderError.VisitorRequest"/>.</summary>
    public int Status { get; init; }

    /// <summary>What was wrong with a <see cref="ForwarderError.VisitorRequest"/>, as the visitor reads it.</summary>
    public string? Reason { get; init; }

    /// <summary>The peer edge of a <see cref="ForwarderError.PeerRequest"/>.</summary>
    public string? Peer { get; init; }

    /// <summary>How many connections were found full, for <see cref="ForwarderError.TunnelsFull"/>.</summary>
    public int Full { get; init; }

    /// <summary>How many connections reported their app not ready, for <see cref="ForwarderError.NotReady"/>.</summary>
    public int NotReady { get; init; }

    /// <summary>The wait that ran out (<see cref="ForwarderError.NoStreamFree"/>, <see cref="ForwarderError.ResponseHeadersTimeout"/>).</summary>
    public TimeSpan Waited { get; init; }

    /// <summary>A request the visitor got wrong, with the status and reason to answer it with.</summary>
    public static ForwarderFailure OfVisitor(int status, string reason) => new(ForwarderError.VisitorRequest) { Status = status, Reason = reason };
}
