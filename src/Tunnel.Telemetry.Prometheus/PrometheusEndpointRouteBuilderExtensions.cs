using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Tunnel.Telemetry.Prometheus;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps a Prometheus scrape endpoint for chosen meters.</summary>
public static class PrometheusEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Serves the meters named <paramref name="meterNames"/> (those of this app's
    /// <see cref="IMeterFactory"/>) at <paramref name="pattern"/> in the Prometheus text format 0.0.4,
    /// for GET and HEAD. Counters count from this call on; the listener stops with the app.
    /// </summary>
    /// <param name="endpoints">The app's endpoint builder.</param>
    /// <param name="pattern">The route, usually <c>/metrics</c>.</param>
    /// <param name="meterNames">The meters' names, e.g. <c>Tunnel.Transport</c>.</param>
    /// <returns>The endpoint's convention builder, e.g. for <c>RequireHost</c>.</returns>
    /// <remarks>
    /// Metrics show infrastructure details; restrict who can reach them, e.g. with
    /// <c>RequireHost("127.0.0.1:*")</c> or by serving them only on a loopback listener.
    /// </remarks>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string pattern, params IEnumerable<string> meterNames)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        ArgumentNullException.ThrowIfNull(meterNames);

        var services = endpoints.ServiceProvider;
        var collector = new PrometheusCollector(services.GetRequiredService<IMeterFactory>(), meterNames);
        services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopped.Register(collector.Dispose);

        return endpoints.MapMethods(pattern, [HttpMethods.Get, HttpMethods.Head], (HttpContext context) =>
        {
            context.Response.Headers.CacheControl = "no-store";
            context.Response.ContentType = PrometheusCollector.ContentType;
            return context.Response.WriteAsync(collector.Scrape(), context.RequestAborted);
        });
    }
}
