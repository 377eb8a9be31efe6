using Microsoft.AspNetCore.Http;
using Tunnel.Protocol;

namespace Tunnel.Edge.Visitors;

/// <summary>
/// Redirects plain-HTTP requests for the configured hostnames to HTTPS with 308, which keeps the
/// method and body, so a POST is redirected as a POST.
/// </summary>
internal sealed class HttpsRedirect
{
    private readonly HashSet<string> _hosts;
    private readonly bool _everyHost;

    public HttpsRedirect(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _hosts = new HashSet<string>(StringComparer.Ordinal);
        foreach (var host in options.HttpsRedirectHosts)
        {
            if (host.Trim() == "*")
            {
                _everyHost = true;
            }
            else if (HostnameRules.TryNormalize(host, out var normalized, out var error))
            {
                _hosts.Add(normalized);
            }
            else
            {
                throw new InvalidOperationException($"HttpsRedirectHosts: {error}.");
            }
        }

        ConfiguredPort = options.HttpsRedirectPort;
    }

    /// <summary>Adds a problem for each <c>HttpsRedirectHosts</c> entry that is neither '*' nor a hostname.</summary>
    public static void Validate(EdgeOptions options, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var host in options.HttpsRedirectHosts)
        {
            if (host.Trim() != "*" && !HostnameRules.TryNormalize(host, out _, out var error))
            {
                errors.Add($"HttpsRedirectHosts: {error}.");
            }
        }
    }

    /// <summary>Whether any host is redirected.</summary>
    public bool IsEnabled => _everyHost || _hosts.Count > 0;

    /// <summary>The port the configuration names for <c>Location</c>, if any.</summary>
    public int? ConfiguredPort { get; }

    /// <summary>The HTTPS port the edge listens on; set once it is bound.</summary>
    public int ListeningPort { get; set; }

    /// <summary>The middleware; placed before the forwarder.</summary>
    public RequestDelegate Middleware(RequestDelegate next) => context =>
    {
        var request = context.Request;
        if (request.IsHttps || !request.Host.HasValue || ListeningPort == 0 || !Applies(request.Host.Host))
        {
            return next(context);
        }

        var port = ConfiguredPort ?? ListeningPort;
        var authority = port == 443 ? new HostString(request.Host.Host) : new HostString(request.Host.Host, port);
        context.Response.StatusCode = StatusCodes.Status308PermanentRedirect;
        context.Response.Headers.Location = string.Concat("https://", authority.ToUriComponent(), request.PathBase.ToUriComponent(), request.Path.ToUriComponent(), request.QueryString.ToUriComponent());
        return Task.CompletedTask;
    };

    private bool Applies(string host)
    {
        if (_everyHost)
        {
            return true;
        }

        var name = host.TrimEnd('.').ToLowerInvariant();
        return _hosts.Contains(name) || (HostnameRules.WildcardFor(name) is { } wildcard && _hosts.Contains(wildcard));
    }
}
