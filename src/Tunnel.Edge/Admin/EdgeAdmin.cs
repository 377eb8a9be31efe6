using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Telemetry;
using Tunnel.Telemetry.Prometheus;

namespace Tunnel.Edge.Admin;

/// <summary>
/// The admin listener (<see cref="EdgeOptions.AdminAddress"/>, <see cref="EdgeOptions.AdminPort"/>):
/// <c>/metrics</c> in the Prometheus text format, the status page at <c>/</c> and the authenticated admin
/// API under <c>/api/v1/</c> (see <see cref="AdminApi"/>). It is one more
/// Kestrel endpoint of the edge's host, whose connections carry a marker feature; the pipeline sends
/// requests with that marker here before any visitor middleware, so a visitor can never reach these
/// pages, and admin requests never count as visitor traffic.
/// </summary>
internal static class EdgeAdmin
{
    /// <summary>Registers the telemetry the edge always keeps, and the admin pages' services.</summary>
    public static void AddServices(IServiceCollection services)
    {
        services.AddMetrics();
        services.AddSingleton<EdgeMetrics>();
        services.AddSingleton<EdgeConnectionEvents>();
        services.AddSingleton<RecentRequests>();
        services.AddSingleton<StatusPage>();
        services.AddSingleton<AdminApi>();
        services.AddSingleton(sp => new PrometheusCollector(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), EdgeMetrics.MeterName, EdgeMetrics.RuntimeMeterName));
    }

    /// <summary>Adds the admin endpoint to Kestrel unless it is off; returns its listen options.</summary>
    public static ListenOptions? Listen(KestrelServerOptions kestrel, EdgeOptions options)
    {
        if (options.AdminPort < 0)
        {
            return null;
        }

        ListenOptions? admin = null;
        kestrel.Listen(IPAddress.Parse(options.AdminAddress), options.AdminPort, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.Use(next => connection =>
            {
                connection.Features.Set(AdminConnectionFeature.Instance);
                return next(connection);
            });
            admin = listen;
        });
        return admin;
    }

    /// <summary>Branches admin connections' requests off the pipeline, and starts collecting.</summary>
    public static void Map(WebApplication app, bool enabled)
    {
        if (!enabled)
        {
            return;
        }

        // Created now, so the counters hold everything from the edge's start.
        var collector = app.Services.GetRequiredService<PrometheusCollector>();
        var page = app.Services.GetRequiredService<StatusPage>();

        // Created now, so an unreadable token file or a bad network stops the edge at start.
        var api = app.Services.GetRequiredService<AdminApi>();
        var hosts = new AdminHostFilter(app.Services.GetRequiredService<EdgeOptions>());
        app.MapWhen(context => context.Features.Get<AdminConnectionFeature>() is not null, admin => admin.Run(context => ServeAsync(context, collector, page, api, hosts)));
    }

    /// <summary>Logs where the admin listener is, warning when it is reachable from other machines.</summary>
    public static void LogListening(ILogger logger, IPEndPoint endPoint)
    {
        EdgeLog.AdminListening(logger, endPoint.ToString());
        if (!IPAddress.IsLoopback(endPoint.Address))
        {
            EdgeLog.AdminNotLoopback(logger, endPoint.ToString());
        }
    }

    private static async Task ServeAsync(HttpContext context, PrometheusCollector collector, StatusPage page, AdminApi api, AdminHostFilter hosts)
    {
        context.Response.Headers.CacheControl = "no-store";
        if (!await api.CheckBodySizeAsync(context).ConfigureAwait(false))
        {
            return;
        }

        if (context.Request.Path.StartsWithSegments(AdminApi.Prefix.TrimEnd('/'), StringComparison.Ordinal))
        {
            // The API needs the bearer token, which a rebinding page does not have.
            await api.HandleAsync(context).ConfigureAwait(false);
        }
        else if (!hosts.Allows(context))
        {
            await api.RefuseHostAsync(context).ConfigureAwait(false);
        }
        else
        {
            await ServePageAsync(context, collector, page).ConfigureAwait(false);
        }
    }

    private static Task ServePageAsync(HttpContext context, PrometheusCollector collector, StatusPage page)
    {
        var response = context.Response;

        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            response.Headers.Allow = "GET, HEAD";
            return Task.CompletedTask;
        }

        switch (context.Request.Path.Value)
        {
            case "/metrics":
                response.ContentType = PrometheusCollector.ContentType;
                return response.WriteAsync(collector.Scrape(), context.RequestAborted);
            case "/" or "":
                response.ContentType = "text/html; charset=utf-8";
                return response.WriteAsync(page.Render(), context.RequestAborted);
            default:
                response.StatusCode = StatusCodes.Status404NotFound;
                response.ContentType = "text/plain; charset=utf-8";
                return response.WriteAsync("Not found. The admin port serves / (status), /metrics and the admin API under /api/v1/.\n", context.RequestAborted);
        }
    }

    /// <summary>Marks a connection accepted on the admin endpoint.</summary>
    private sealed class AdminConnectionFeature
    {
        public static readonly AdminConnectionFeature Instance = new();
    }
}
