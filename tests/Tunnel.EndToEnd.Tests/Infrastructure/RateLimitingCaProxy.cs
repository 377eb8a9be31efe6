using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A real HTTPS hop in front of pebble, for the one answer pebble 2.4 never gives: a rate limit. Every request
/// passes through to pebble with its Host kept, so pebble's URLs and its check of each JWS's <c>url</c> name
/// this hop; while <see cref="RetryAfter"/> is set, a new order (<c>POST /order-plz</c>) is answered here
/// instead, as Let's Encrypt answers one over its limits: 429, <c>urn:ietf:params:acme:error:rateLimited</c>,
/// <c>Retry-After</c>, and a fresh nonce from pebble. It serves pebble's own listener certificate, so the edge
/// trusts it through the same <c>DirectoryCertificateAuthority</c>.
/// </summary>
public sealed class RateLimitingCaProxy : IAsyncDisposable
{
    private static readonly string[] HopHeaders = ["Transfer-Encoding", "Connection", "Content-Length", "Keep-Alive"];

    private readonly WebApplication _app;
    private readonly HttpClient _pebble;
    private readonly List<(DateTimeOffset At, bool Refused)> _orders = [];

    private RateLimitingCaProxy(WebApplication app, HttpClient pebble)
    {
        _app = app;
        _pebble = pebble;
    }

    /// <summary>The directory URL to give the edge.</summary>
    public string DirectoryUrl { get; private set; } = "";

    /// <summary>While set, new orders are refused as rate-limited with this <c>Retry-After</c>.</summary>
    public TimeSpan? RetryAfter { get; set; }

    /// <summary>Every new order that reached this hop: when, and whether it was refused.</summary>
    public IReadOnlyList<(DateTimeOffset At, bool Refused)> Orders
    {
        get
        {
            lock (_orders)
            {
                return [.. _orders];
            }
        }
    }

    /// <summary>Starts the hop on a free loopback port in front of <paramref name="pebble"/>.</summary>
    public static async Task<RateLimitingCaProxy> StartAsync(PebbleProcess pebble)
    {
        var client = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, c, _, _) => pebble.IssuedByListenerCa(c) } })
        {
            Timeout = TimeSpan.FromSeconds(30),
        };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var (certificatePath, keyPath) = pebble.Listener;
        using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        var certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate)));
        var app = builder.Build();
        var proxy = new RateLimitingCaProxy(app, client);
        var target = new Uri(pebble.DirectoryUrl).GetLeftPart(UriPartial.Authority);
        app.Run(context => proxy.HandleAsync(context, target));
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        proxy.DirectoryUrl = $"https://127.0.0.1:{port}/dir";
        return proxy;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _pebble.Dispose();
    }

    private async Task HandleAsync(HttpContext context, string target)
    {
        if (HttpMethods.IsPost(context.Request.Method) && context.Request.Path == "/order-plz")
        {
            var refuse = RetryAfter;
            lock (_orders)
            {
                _orders.Add((DateTimeOffset.UtcNow, refuse is not null));
            }

            if (refuse is { } retryAfter)
            {
                await RefuseAsync(context, target, retryAfter);
                return;
            }
        }

        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), target + context.Request.Path + context.Request.QueryString);
        request.Headers.Host = context.Request.Host.Value;
        if (context.Request.ContentLength > 0 || context.Request.Headers.ContainsKey("Transfer-Encoding"))
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            request.Content = new ByteArrayContent(body.ToArray());
            if (context.Request.ContentType is { } type)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
            }
        }

        using var response = await _pebble.SendAsync(request);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var header in response.Headers.Concat(response.Content.Headers).Where(h => !HopHeaders.Contains(h.Key, StringComparer.OrdinalIgnoreCase)))
        {
            context.Response.Headers[header.Key] = header.Value.ToArray();
        }

        await response.Content.CopyToAsync(context.Response.Body);
    }

    /// <summary>Let's Encrypt's answer to an order over its limits, with a nonce pebble will take for the next request.</summary>
    private async Task RefuseAsync(HttpContext context, string target, TimeSpan retryAfter)
    {
        using var nonceRequest = new HttpRequestMessage(HttpMethod.Head, target + "/nonce-plz");
        nonceRequest.Headers.Host = context.Request.Host.Value;
        using var nonce = await _pebble.SendAsync(nonceRequest);
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        context.Response.Headers["Replay-Nonce"] = nonce.Headers.GetValues("Replay-Nonce").First();
        context.Response.Headers.RetryAfter = ((int)retryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        context.Response.ContentType = "application/problem+json";
        await context.Response.WriteAsync("""
            {"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates already issued for this exact set of identifiers in the last 168h","status":429}
            """);
    }
}
