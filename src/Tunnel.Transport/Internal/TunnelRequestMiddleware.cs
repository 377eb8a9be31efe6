using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Tunnel.Protocol;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Puts <see cref="TunnelRequestMiddleware"/> first in the app's pipeline.
/// </summary>
internal sealed class TunnelStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
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
internal sealed class TunnelRequestMiddleware(RequestDelegate next, IOptionsMonitor<TunnelOptions> options, IHostApplicationLifetime lifetime)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (context.Features.Get<ITunnelConnectionFeature>() is not null)
        {
            if (context.Request.Headers.ContainsKey(TunnelHeaderNames.Probe))
            {
                return HoldAnchorAsync(context);
            }

            if (options.CurrentValue.ApplyForwardedHeaders)
            {
                Apply(context);
            }
        }

        return next(context);
    }

    /// <summary>
    /// The probe stays open as the tunnel's anchor stream. While a stream is open Kestrel never starts
    /// its keep-alive timeout, so an idle tunnel is not closed. A byte every second tells the edge the
    /// tunnel is alive. When the app begins to stop the anchor ends, which tells the edge at once to
    /// send this connection nothing new; when the edge cancels it, the edge is draining and this
    /// connection's slot dials a replacement elsewhere.
    /// </summary>
    private async Task HoldAnchorAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);

        // Starting the response only queues the headers; the edge is waiting for them.
        await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        using var release = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        try
        {
            while (true)
            {
                await Task.Delay(TunnelLimits.AnchorHeartbeatInterval, release.Token).ConfigureAwait(false);
                await context.Response.Body.WriteAsync(Heartbeat, release.Token).ConfigureAwait(false);
                await context.Response.Body.FlushAsync(release.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            // The connection closed, the edge cancelled the anchor, or the app is stopping.
        }

        if (!lifetime.ApplicationStopping.IsCancellationRequested)
        {
            (context.Features.Get<ITunnelConnectionFeature>() as TunnelConnectionFeature)?.RequestMove();
        }
    }

    private static readonly ReadOnlyMemory<byte> Heartbeat = new byte[] { 0 };

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
