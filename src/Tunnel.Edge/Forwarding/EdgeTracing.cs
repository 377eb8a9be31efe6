using System.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace Tunnel.Edge.Forwarding;

/// <summary>
/// Starts the edge's server span for each visitor request (ActivitySource <c>Tunnel.Edge</c>), as a
/// child of the visitor's own trace context when it sent one. The HTTP client that forwards the
/// request injects this span's W3C <c>traceparent</c> into the request down the tunnel, so the app's
/// ASP.NET Core request span becomes its child.
/// </summary>
internal sealed class EdgeTracing(RequestDelegate next)
{
    /// <summary>The edge's ActivitySource name.</summary>
    public const string SourceName = "Tunnel.Edge";

    internal static readonly ActivitySource Source = new(SourceName, typeof(EdgeTracing).Assembly.GetName().Version?.ToString());

    /// <summary>Runs the rest of the pipeline inside the span.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);

        // With nothing listening there is no span to make: the request goes on without another async layer.
        if (!Source.HasListeners())
        {
            return next(context);
        }

        var parent = Activity.Current?.Context ?? ExtractParent(context.Request.Headers);
        var activity = Source.StartActivity("tunnel.edge.request", ActivityKind.Server, parent);
        return activity is null ? next(context) : TracedAsync(context, activity);
    }

    private async Task TracedAsync(HttpContext context, Activity activity)
    {
        using (activity)
        {
            activity.DisplayName = $"{context.Request.Method} {context.Request.Host.Host}";
            activity.SetTag("http.request.method", context.Request.Method);
            activity.SetTag("server.address", context.Request.Host.Host);
            activity.SetTag("url.path", context.Request.Path.Value);
            activity.SetTag("client.address", context.Connection.RemoteIpAddress?.ToString());
            await next(context).ConfigureAwait(false);
            activity.SetTag("http.response.status_code", context.Response.StatusCode);
            if (context.Response.StatusCode >= 500)
            {
                activity.SetStatus(ActivityStatusCode.Error);
            }
        }
    }

    private static ActivityContext ExtractParent(IHeaderDictionary headers)
    {
        var traceParent = headers["traceparent"].ToString();
        return ActivityContext.TryParse(traceParent, headers["tracestate"].ToString(), out var parsed) ? parsed : default;
    }
}
