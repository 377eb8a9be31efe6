using System.Net;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Forwarding;

namespace Tunnel.MicroBench;

/// <summary>
/// The forwarder's per-request header work: building the HTTP/2 request from a browser-like visitor
/// request, and copying an ordinary response's headers back.
/// </summary>
[MemoryDiagnoser]
public class ForwarderHeaderBenchmarks
{
    private DefaultHttpContext _visitor = null!;
    private HttpResponseMessage _upstream = null!;
    private HeaderDictionary _responseHeaders = null!;
    private ResponseHeadersDeadline _deadline = null!;

    [GlobalSetup]
    public void Setup()
    {
        _visitor = new DefaultHttpContext();
        var request = _visitor.Request;
        request.Method = "GET";
        request.Scheme = "https";
        request.Host = new HostString("app.example.com");
        request.Path = "/products/42";
        request.QueryString = new QueryString("?view=full");
        request.Headers.Accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        request.Headers.AcceptEncoding = "gzip, deflate, br";
        request.Headers.AcceptLanguage = "en-GB,en;q=0.9";
        request.Headers.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        request.Headers.Cookie = "session=0123456789abcdef; theme=dark";
        request.Headers.CacheControl = "no-cache";
        request.Headers.Connection = "keep-alive";
        request.Headers["Sec-Fetch-Mode"] = "navigate";
        request.Headers["Sec-Fetch-Site"] = "none";
        request.Headers["Upgrade-Insecure-Requests"] = "1";
        request.Headers["X-Forwarded-For"] = "203.0.113.9";
        _visitor.Connection.RemoteIpAddress = IPAddress.Parse("198.51.100.7");
        _deadline = new ResponseHeadersDeadline(TimeSpan.FromSeconds(100), CancellationToken.None);

        _upstream = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent([]) };
        _upstream.Headers.TryAddWithoutValidation("Date", "Sun, 22 Nov 2026 04:00:00 GMT");
        _upstream.Headers.TryAddWithoutValidation("Server", "Kestrel");
        _upstream.Headers.TryAddWithoutValidation("Cache-Control", "private, max-age=60");
        _upstream.Headers.TryAddWithoutValidation("Set-Cookie", "session=0123456789abcdef; Path=/; HttpOnly");
        _upstream.Headers.TryAddWithoutValidation("Vary", "Accept-Encoding");
        _upstream.Content.Headers.TryAddWithoutValidation("Content-Type", "text/html; charset=utf-8");
        _upstream.Content.Headers.TryAddWithoutValidation("Content-Length", "5120");
        _responseHeaders = new HeaderDictionary();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _deadline.Dispose();
        _upstream.Dispose();
    }

    [Benchmark]
    public HttpRequestMessage CreateRequest()
    {
        var request = RequestForwarder.CreateRequest(_visitor, new RequestForwarder.StrongBox(), null, _deadline, null);
        request.Dispose();
        return request;
    }

    [Benchmark]
    public int CopyResponseHeaders()
    {
        _responseHeaders.Clear();
        RequestForwarder.CopyHeaders(_upstream.Headers, _responseHeaders, null);
        RequestForwarder.CopyHeaders(_upstream.Content.Headers, _responseHeaders, null);
        return _responseHeaders.Count;
    }
}
