using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Access;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Forwarding;

/// <summary>The one failure step: every failed request is logged, counted and answered here.</summary>
internal sealed partial class RequestForwarder
{
    // The host a request without one is logged and shown under.
    private const string NoHostName = "(none)";

    /// <summary>
    /// Fails the request: logs it, reports its <c>error.type</c> for the request metric, and answers the
    /// visitor with the edge's error page, or breaks the response off when the origin's had begun.
    /// </summary>
    internal static Task FailAsync(HttpContext context, ILogger logger, string host, ForwarderFailure failure)
    {
        var requestId = EdgeRequestFeature.For(context).RequestId;
        Log(logger, requestId, host, failure);
        if (ErrorTypeOf(failure) is { } errorType)
        {
            UpstreamErrors.Report(context, errorType);
        }

        if (failure.Error == ForwarderError.ResponseBroken)
        {
            context.Abort();
            return Task.CompletedTask;
        }

        var (status, detail) = PageOf(host, failure);
        var retryAfter = failure.Error is ForwarderError.TunnelsFull or ForwarderError.NoStreamFree or ForwarderError.NotReady ? EdgeAccessMiddleware.OverloadRetryAfter : (TimeSpan?)null;
        return ErrorPages.WriteAsync(context, status, ErrorPages.TitleFor(status), detail, host, requestId, retryAfter);
    }

    private static void Log(ILogger logger, string requestId, string host, ForwarderFailure failure)
    {
        switch (failure.Error)
        {
            case ForwarderError.NoHost:
                EdgeLog.RequestFailed(logger, requestId, host, 400, "no Host");
                break;
            case ForwarderError.VisitorRequest:
                EdgeLog.RequestFailed(logger, requestId, host, failure.Status, failure.Reason!);
                break;
            case ForwarderError.VisitorBodyShort:
                EdgeLog.RequestFailed(logger, requestId, host, 400, "body shorter than its Content-Length");
                break;
            case ForwarderError.NoTunnel:
                EdgeLog.RequestFailed(logger, requestId, host, 502, "no tunnel");
                break;
            case ForwarderError.NoOtherTunnel:
                EdgeLog.RequestFailed(logger, requestId, host, 502, "no other tunnel");
                break;
            case ForwarderError.NotReady:
                Tunnels.ReadinessLog.RouteNotReady(logger, requestId, host, failure.NotReady);
                break;
            case ForwarderError.TunnelsFull:
                EdgeLog.RequestOverloaded(logger, requestId, host, failure.Full, "tunnel connection");
                break;
            case ForwarderError.NoStreamFree:
                EdgeLog.StreamWaitTimedOut(logger, requestId, host, failure.Waited.TotalSeconds);
                break;
            case ForwarderError.ResponseHeadersTimeout:
                EdgeLog.ResponseHeadersTimedOut(logger, requestId, host, failure.Waited.TotalSeconds);
                break;
            case ForwarderError.TunnelRequest:
                EdgeLog.RequestFailed(logger, requestId, host, 502, Describe(failure.Exception!));
                break;
            case ForwarderError.NoPeerAnswered:
                EdgeLog.RequestFailed(logger, requestId, host, 502, "no peer holding the route answered");
                break;
            case ForwarderError.PeerRequest:
                EdgeLog.RequestFailed(logger, requestId, host, 502, $"peer {failure.Peer}: {Describe(failure.Exception!)}");
                break;
            case ForwarderError.ResponseBroken:
                EdgeLog.ResponseAborted(logger, requestId, host, failure.Exception!.Message);
                break;
        }
    }

    /// <summary>The <c>error.type</c> the request metric carries, or <c>null</c> for the visitor's own errors.</summary>
    private static string? ErrorTypeOf(ForwarderFailure failure) => failure.Error switch
    {
        ForwarderError.NoTunnel => UpstreamErrors.NoTunnel,
        ForwarderError.NotReady => UpstreamErrors.NotReady,
        ForwarderError.NoOtherTunnel or ForwarderError.NoPeerAnswered or ForwarderError.ResponseBroken => UpstreamErrors.ConnectionLost,
        ForwarderError.TunnelsFull or ForwarderError.NoStreamFree => UpstreamErrors.Refused,
        ForwarderError.ResponseHeadersTimeout => UpstreamErrors.Timeout,
        ForwarderError.TunnelRequest or ForwarderError.PeerRequest => UpstreamErrors.Classify((HttpRequestException)failure.Exception!),
        _ => null,
    };

    /// <summary>The status and the sentence of the visitor's error page.</summary>
    private static (int Status, string Detail) PageOf(string host, ForwarderFailure failure) => failure.Error switch
    {
        ForwarderError.NoHost => (400, "The request has no Host header, so the edge cannot tell which site it is for."),
        ForwarderError.VisitorRequest => (failure.Status, failure.Reason!),
        ForwarderError.VisitorBodyShort => (400, "The request body ended before its declared Content-Length."),
        ForwarderError.NoTunnel => (502, $"No origin is connected for {host}. If you run this site, check that its tunnel is up."),
        ForwarderError.NoOtherTunnel => (502, $"The tunnel connection for {host} failed and no other is connected."),
        ForwarderError.NotReady => (503, $"{host} is not ready: its app reports that it cannot take requests at the moment. Try again shortly."),
        ForwarderError.TunnelsFull => (503, $"Every tunnel connection for {host} is as busy as it may be. Try again shortly."),
        ForwarderError.NoStreamFree => (503, $"Every tunnel stream for {host} stayed busy for {failure.Waited.TotalSeconds:0.###} s. Try again shortly."),
        ForwarderError.ResponseHeadersTimeout => (504, $"The origin for {host} did not begin to answer within {failure.Waited.TotalSeconds:0.###} s."),
        ForwarderError.TunnelRequest => (502, $"The connection to the origin for {host} failed before it answered."),
        ForwarderError.NoPeerAnswered => (502, $"The edges holding the tunnel for {host} could not be reached."),
        ForwarderError.PeerRequest => (502, $"The edge holding the tunnel for {host} failed before it answered."),
        _ => throw new ArgumentOutOfRangeException(nameof(failure), failure.Error, "This failure has no page."),
    };

    private static string Describe(Exception ex)
    {
        var message = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            message += " -> " + inner.Message;
        }

        return message;
    }
}
