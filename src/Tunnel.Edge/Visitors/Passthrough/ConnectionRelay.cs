using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Forwarding;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.Edge.Tunnels;
using Tunnel.Edge.Tunnels.Http2;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// Carries one visitor connection whole: opens an extended CONNECT stream on the route's least busy
/// tunnel connection and copies bytes both ways until either side ends. Bytes the edge read to route
/// the connection are still in the visitor's pipe, so they go first, unchanged.
/// </summary>
internal sealed partial class ConnectionRelay(ConnectionRouteTables tables, ConnectionRouteMetrics metrics, EdgeOptions options, ILogger<ConnectionRelay> logger, TimeProvider time)
{
    // How many tunnel connections are tried when one cannot take the stream (it was closing).
    private const int MaxAttempts = 3;

    // How long the visitor may keep sending after the origin ended its side before the edge closes.
    private static readonly TimeSpan HalfCloseGrace = TimeSpan.FromSeconds(5);

    /// <summary>Whether any tunnel registered a route in <paramref name="mode"/>: a cheap test before any reading.</summary>
    public bool AnyRoute(ConnectionMode mode) => tables.For(mode).HasRoutes;

    /// <summary>Whether a route for <paramref name="host"/> in <paramref name="mode"/> exists on this edge.</summary>
    public bool HasRoute(string host, ConnectionMode mode) => tables.For(mode) is { HasRoutes: true } table && table.HasRoute(host);

    /// <summary>
    /// Relays the connection to a tunnel of the route; returns <c>false</c> (having sent nothing) when no
    /// tunnel of the route could take it, so the caller may answer the visitor another way.
    /// </summary>
    public async Task<bool> RelayAsync(ConnectionContext visitor, string host, ConnectionMode mode, int edgePort, bool http2 = false)
    {
        var table = tables.For(mode);
        var route = table.MatchRoute(host) ?? host;
        List<TunnelConnection>? tried = null;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            if (table.Pick(host, tried) is not { } tunnel)
            {
                break;
            }

            var stream = await OpenAsync(tunnel, visitor, host, mode, edgePort, http2).ConfigureAwait(false);
            if (stream is null)
            {
                (tried ??= []).Add(tunnel);
                continue;
            }

            await CopyAsync(visitor, stream, tunnel, route, mode).ConfigureAwait(false);
            return true;
        }

        metrics.Counted(route, mode, RouteReadiness.CountNotReady(table, host) > 0 ? "not_ready" : "no_tunnel");
        NoTunnel(logger, ConnectionRouteMetrics.Name(mode), host, visitor.RemoteEndPoint);
        return false;
    }

    /// <returns>The stream, or <c>null</c> when the tunnel could not take it (closing, refused).</returns>
    private async Task<Http2ResponseStream?> OpenAsync(TunnelConnection tunnel, ConnectionContext visitor, string host, ConnectionMode mode, int edgePort, bool http2)
    {
        using var request = new VisitorConnectRequest(host, mode, visitor.RemoteEndPoint, edgePort, http2);
        HttpResponseMessage response;
        try
        {
            response = await tunnel.Invoker.SendAsync(request, visitor.ConnectionClosed).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            StreamFailed(logger, host, tunnel.Id, ex.Message);
            return null;
        }

        if (response.StatusCode != HttpStatusCode.OK || await response.Content.ReadAsStreamAsync().ConfigureAwait(false) is not Http2ResponseStream stream)
        {
            StreamRefused(logger, host, tunnel.Id, (int)response.StatusCode);
            response.Dispose();
            return null;
        }

        return stream;
    }

    private async Task CopyAsync(ConnectionContext visitor, Http2ResponseStream stream, TunnelConnection tunnel, string route, ConnectionMode mode)
    {
        var started = time.GetTimestamp();
        tunnel.RequestStarted();
        metrics.Opened(route, mode);
        var outcome = "relayed";
        var counts = new long[2];

        // Not the visitor's ConnectionClosed: Kestrel fires it when the visitor ends its side, and the
        // origin may still answer (a half-close). A reset, or the origin ending first, stops the rest.
        using var stop = new CancellationTokenSource();
        using var idle = new IdleWatch(options.Limits.ConnectionIdleTimeout, time, stop);
        try
        {
            var upstream = CopyToOriginAsync(visitor.Transport.Input, stream, idle, stop.Token, counts);
            var downstream = CopyToVisitorAsync(stream, visitor.Transport.Output, idle, stop.Token, counts);
            var first = await Task.WhenAny(upstream, downstream).ConfigureAwait(false);
            if (first == downstream)
            {
                // The origin ended: the visitor has its last bytes; give its side a moment to end too.
                stop.CancelAfter(HalfCloseGrace);
            }
            else if (!await upstream.ConfigureAwait(false))
            {
                // The visitor reset the connection: nobody reads what the origin still sends.
                await stop.CancelAsync().ConfigureAwait(false);
            }

            await Task.WhenAll(upstream, downstream).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or HttpRequestException or ConnectionResetException or ObjectDisposedException or InvalidOperationException)
        {
            outcome = "failed";
        }
        finally
        {
            if (idle.Expired)
            {
                outcome = "idle";
                Idle(logger, ConnectionRouteMetrics.Name(mode), route, visitor.RemoteEndPoint, idle.Timeout.TotalSeconds);
            }

            await stop.CancelAsync().ConfigureAwait(false);
            await stream.DisposeAsync().ConfigureAwait(false);
            tunnel.RequestFinished();
            metrics.Closed(route, mode, outcome, time.GetElapsedTime(started), counts[0], counts[1]);
        }
    }

    /// <returns>Whether the visitor ended its side cleanly (rather than by a reset).</returns>
    private static async Task<bool> CopyToOriginAsync(PipeReader input, Http2ResponseStream stream, IdleWatch idle, CancellationToken cancellationToken, long[] counts)
    {
        var clean = true;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
                idle.Touch();
                foreach (var segment in result.Buffer)
                {
                    await stream.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
                }

                counts[0] += result.Buffer.Length;
                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is ConnectionResetException or IOException or OperationCanceledException or HttpRequestException)
        {
            // The visitor went away, or the origin ended first and the grace ran out.
            clean = false;
        }

        stream.CompleteWrites();
        return clean;
    }

    private static async Task CopyToVisitorAsync(Http2ResponseStream stream, PipeWriter output, IdleWatch idle, CancellationToken cancellationToken, long[] counts)
    {
        try
        {
            while (true)
            {
                var memory = output.GetMemory(16 * 1024);
                var read = await stream.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                idle.Touch();
                output.Advance(read);
                counts[1] += read;
                var flushed = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    break;
                }
            }
        }
        finally
        {
            await output.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Counts and logs a connection the host's Allow/Deny rules refused.</summary>
    public void Denied(string host, ConnectionMode mode, string refusal)
    {
        metrics.Counted(tables.For(mode).MatchRoute(host) ?? host, mode, "denied");
        ConnectionDenied(logger, ConnectionRouteMetrics.Name(mode), host, refusal);
    }

    [LoggerMessage(303, LogLevel.Information, "A visitor connection ({Mode}) for {Host} was refused by the host's rules: {Refusal}.", EventName = "ConnectionDenied")]
    private static partial void ConnectionDenied(ILogger logger, string mode, string host, string refusal);

    [LoggerMessage(304, LogLevel.Information, "A visitor connection ({Mode}) for {Route} from {Visitor} passed no byte either way for {Seconds:0.###} s (Limits:ConnectionIdleTimeout); the edge closed it.", EventName = "ConnectionIdle")]
    private static partial void Idle(ILogger logger, string mode, string route, EndPoint? visitor, double seconds);

    [LoggerMessage(300, LogLevel.Warning, "A visitor connection ({Mode}) for {Host} from {Visitor} found no tunnel that could take it.", EventName = "ConnectionNoTunnel")]
    private static partial void NoTunnel(ILogger logger, string mode, string host, EndPoint? visitor);

    [LoggerMessage(301, LogLevel.Information, "Opening a connection stream for {Host} on tunnel {TunnelConnectionId} failed ({Reason}); trying another.", EventName = "ConnectionStreamFailed")]
    private static partial void StreamFailed(ILogger logger, string host, string tunnelConnectionId, string reason);

    [LoggerMessage(302, LogLevel.Warning, "The origin on tunnel {TunnelConnectionId} refused a connection stream for {Host} with status {Status}; trying another.", EventName = "ConnectionStreamRefused")]
    private static partial void StreamRefused(ILogger logger, string host, string tunnelConnectionId, int status);
}
