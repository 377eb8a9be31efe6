using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Tunnel.Protocol;
using Tunnel.Transport.Connections;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Puts <see cref="TunnelRequestMiddleware"/> first in the app's pipeline. Startup filters run after the
/// host has given the server its URLs and before the server binds, which is when <see cref="UrlListeners"/>
/// keeps them.
/// </summary>
internal sealed class TunnelStartupFilter(UrlListeners urlListeners) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        urlListeners.MoveToEndpoints(app);
        app.UseMiddleware<TunnelRequestMiddleware>();
        next(app);
    };
}

/// <summary>
/// On tunnel connections only: holds the edge's probe (the request that opens HTTP/2 on a new
/// tunnel) as the anchor stream before the app sees it, and applies the edge's forwarded headers so the app sees the
/// visitor's IP, scheme and host. The edge strips any visitor-sent copies, so these values come from
/// the edge. On the app's other listeners nothing is touched: anyone could send them there.
/// </summary>
internal sealed class TunnelRequestMiddleware(RequestDelegate next, IOptionsMonitor<TunnelOptions> options, IHostApplicationLifetime lifetime, VisitorConnectionAcceptor acceptor, TunnelReadiness readiness)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.Features.Get<ITunnelConnectionFeature>() is { } tunnel)
        {
            if (context.Request.Headers.ContainsKey(TunnelHeaderNames.Probe))
            {
                return HoldAnchorAsync(context);
            }

            if (VisitorConnectionAcceptor.ModeOf(context) is { } mode)
            {
                return acceptor.AcceptAsync(context, tunnel, mode);
            }

            if (options.CurrentValue.ApplyForwardedHeaders)
            {
                Apply(context);
            }
        }

        else if (context.Features.Get<ITunnelVisitorConnectionFeature>() is { Mode: not TunnelMode.Tcp } visitor
            && !string.Equals(context.Request.Host.Host, visitor.Hostname, StringComparison.OrdinalIgnoreCase))
        {
            // A browser reuses a connection for every name its certificate or address covers; the edge
            // routed this one for one name only, so the browser must open another (RFC 9110 section 15.5.20).
            context.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
            return Task.CompletedTask;
        }

        return next(context);
    }

    /// <summary>
    /// The probe stays open as the tunnel's anchor stream. While a stream is open Kestrel never starts
    /// its keep-alive timeout, so an idle tunnel is not closed. A byte every second tells the edge the
    /// tunnel is alive, and its value whether the app is ready (<see cref="AnchorBeat"/>; a change is sent
    /// at once). When the app begins to stop the anchor ends, which tells the edge at once to
    /// send this connection nothing new (the same when a renewed credential's replacement has registered);
    /// when the edge cancels it, the edge is draining and this connection's slot dials a replacement elsewhere.
    /// </summary>
    private async Task HoldAnchorAsync(HttpContext context)
    {
        var feature = context.Features.Get<ITunnelConnectionFeature>() as TunnelConnectionFeature;

        // One byte a second each way is the design, not a slow client.
        context.Features.Get<IHttpMinRequestBodyDataRateFeature>()?.MinDataRate = null;
        context.Features.Get<IHttpMinResponseDataRateFeature>()?.MinDataRate = null;

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);

        // Starting the response only queues the headers; the edge is waiting for them.
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        using var release = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping, feature?.AnchorReleased ?? CancellationToken.None);
        var silent = false;
        try
        {
            var sending = SendHeartbeatsAsync(context, readiness, release.Token);
            silent = await WatchHeartbeatsAsync(context, release.Token).ConfigureAwait(false);
            await release.CancelAsync().ConfigureAwait(false);
            await sending.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            // The connection closed, the edge cancelled the anchor, or the app is stopping.
        }

        if (silent && feature is not null)
        {
            // Nothing from the edge for too long: the path is black-holed. Drop the connection so the
            // slot redials now instead of waiting for the PING timeout.
            feature.AbortConnection?.Invoke($"no heartbeat from the edge for {TunnelLimits.AnchorDeadLimit.TotalSeconds:0.#} s");
        }
        else if (!lifetime.ApplicationStopping.IsCancellationRequested && feature?.AnchorReleased.IsCancellationRequested != true)
        {
            feature?.RequestMove();
        }
    }

    private static async Task SendHeartbeatsAsync(HttpContext context, TunnelReadiness readiness, CancellationToken cancellationToken)
    {
        var beat = new byte[1];
        try
        {
            // A connection that opens while the app is not ready says so before the edge chooses it.
            var changed = readiness.Changed;
            var wait = readiness.IsReady ? TunnelLimits.AnchorHeartbeatInterval : TimeSpan.Zero;
            while (true)
            {
                if (wait > TimeSpan.Zero)
                {
                    await Task.WhenAny(Task.Delay(wait, cancellationToken), changed).ConfigureAwait(false);
                }

                // Taken before the state is read, so a change after the read wakes the next wait at once.
                changed = readiness.Changed;

                // One writer: a change and the regular beat never write at the same time.
                beat[0] = readiness.Beat;
                await context.Response.Body.WriteAsync(beat, cancellationToken).ConfigureAwait(false);
                await context.Response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
                wait = TunnelLimits.AnchorHeartbeatInterval;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
        }
    }

    /// <summary>Reads the edge's heartbeats; returns <c>true</c> when they stopped while the anchor stayed open.</summary>
    private static async Task<bool> WatchHeartbeatsAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var buffer = new byte[64];
        while (true)
        {
            using var silence = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            silence.CancelAfter(TunnelLimits.AnchorDeadLimit);
            int read;
            try
            {
                read = await context.Request.Body.ReadAsync(buffer, silence.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return true;
            }

            if (read == 0)
            {
                // The edge ended its side; keep the anchor until the connection or the app ends.
                await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static void Apply(HttpContext context)
    {
        var headers = context.Request.Headers;
        if (headers.TryGetValue(TunnelHeaderNames.ForwardedFor, out var forwardedFor)
            && IPAddress.TryParse(forwardedFor.ToString().Trim(), out var visitorIp))
        {
            context.Connection.RemoteIpAddress = visitorIp;
            context.Connection.RemotePort = 0;
            headers.Remove(TunnelHeaderNames.ForwardedFor);
        }

        if (headers.TryGetValue(TunnelHeaderNames.ForwardedProto, out var proto))
        {
            var scheme = proto.ToString().Trim();
            if (scheme.Equals("https", StringComparison.OrdinalIgnoreCase) || scheme.Equals("http", StringComparison.OrdinalIgnoreCase))
            {
                context.Request.Scheme = scheme.ToLowerInvariant();
                headers.Remove(TunnelHeaderNames.ForwardedProto);
            }
        }

        if (headers.TryGetValue(TunnelHeaderNames.ForwardedHost, out var host))
        {
            var value = host.ToString().Trim();
            if (value.Length > 0)
            {
                context.Request.Host = HostString.FromUriComponent(value);
                headers.Remove(TunnelHeaderNames.ForwardedHost);
            }
        }
    }
}
