using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Tunnel.Edge.Forwarding;

/// <summary>
/// The edge's own error responses: one readable page (or JSON when the visitor asks for it) naming
/// the status, the hostname and the request id that also appears in the edge's log.
/// </summary>
internal static class ErrorPages
{
    public static async Task WriteAsync(HttpContext context, int status, string title, string detail, string host, string requestId, TimeSpan? retryAfter = null)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            // Too late for a page: break the response so the visitor cannot mistake it for a whole one.
            context.Abort();
            return;
        }

        response.Clear();
        response.StatusCode = status;
        response.Headers.CacheControl = "no-store";
        response.Headers[Protocol.TunnelHeaderNames.RequestId] = requestId;
        if (retryAfter is { } delay)
        {
            response.Headers.RetryAfter = ((int)Math.Ceiling(delay.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (WantsJson(context.Request))
        {
            response.ContentType = "application/json; charset=utf-8";
            var json = JsonSerializer.Serialize(new ErrorBody(status, title, detail, host, requestId), ErrorJsonContext.Default.ErrorBody);
            await response.WriteAsync(json, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        response.ContentType = "text/html; charset=utf-8";
        var html = new StringBuilder()
            .Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
            .Append(status).Append(' ').Append(WebUtility.HtmlEncode(title))
            .Append("</title><style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}")
            .Append("h1{font-size:1.6em}code{background:#f3f3f3;padding:.1em .3em}footer{color:#777;font-size:.9em;margin-top:2em}</style></head><body>")
            .Append("<h1>").Append(status).Append(' ').Append(WebUtility.HtmlEncode(title)).Append("</h1>")
            .Append("<p>").Append(WebUtility.HtmlEncode(detail)).Append("</p>")
            .Append("<footer>Host <code>").Append(WebUtility.HtmlEncode(host)).Append("</code> &middot; request id <code>")
            .Append(WebUtility.HtmlEncode(requestId)).Append("</code></footer></body></html>\n")
            .ToString();
        await response.WriteAsync(html, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The reason phrase the edge's pages use as their title.</summary>
    public static string TitleFor(int status) => status switch
    {
        StatusCodes.Status400BadRequest => "Bad Request",
        StatusCodes.Status403Forbidden => "Forbidden",
        StatusCodes.Status408RequestTimeout => "Request Timeout",
        StatusCodes.Status413PayloadTooLarge => "Content Too Large",
        StatusCodes.Status429TooManyRequests => "Too Many Requests",
        StatusCodes.Status431RequestHeaderFieldsTooLarge => "Request Header Fields Too Large",
        StatusCodes.Status502BadGateway => "Bad Gateway",
        StatusCodes.Status503ServiceUnavailable => "Service Unavailable",
        StatusCodes.Status504GatewayTimeout => "Gateway Timeout",
        _ => "Error",
    };

    private static bool WantsJson(HttpRequest request)
    {
        var accept = request.Headers.Accept.ToString();
        return accept.Contains("application/json", StringComparison.OrdinalIgnoreCase)
            && !accept.Contains("text/html", StringComparison.OrdinalIgnoreCase);
    }
}

internal sealed record ErrorBody(int Status, string Title, string Detail, string Host, string RequestId);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(ErrorBody))]
internal sealed partial class ErrorJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
