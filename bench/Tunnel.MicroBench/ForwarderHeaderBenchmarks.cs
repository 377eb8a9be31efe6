using System.Net;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.AspNetCore.Http;
using Tunnel.Edge.Forwarding;
using Tunnel.Edge.Tunnels.Http2;

namespace Tunnel.MicroBench;

/// <summary>
/// The forwarder's per-request header work, each way in both forms the edge has: through
/// <see cref="HttpRequestMessage"/> and <see cref="HttpResponseMessage"/> header collections (the
/// inter-edge hop, and every tunnel request before the fields path), and straight between the visitor's
/// headers and the HPACK block or the decoded field list (tunnel requests now). The request side ends
/// with the encoded HPACK block; the response side starts from decoded fields, as the reader loop has them.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class ForwarderHeaderBenchmarks
{
    // An ordinary response, as the decoder hands its fields over (names lower-case).
    private static readonly KeyValuePair<string, string>[] ResponseFields =
    [
        new("date", "Sun, 22 Nov 2026 04:00:00 GMT"),
        new("server", "Kestrel"),
        new("cache-control", "private, max-age=60"),
        new("set-cookie", "session=0123456789abcdef; Path=/; HttpOnly"),
        new("vary", "Accept-Encoding"),
        new("content-type", "text/html; charset=utf-8"),
        new("content-length", "5120"),
    ];

    private DefaultHttpContext _visitor = null!;
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
        _responseHeaders = new HeaderDictionary();
    }

    [GlobalCleanup]
    public void Cleanup() => _deadline.Dispose();

    /// <summary>Visitor headers into an <see cref="HttpRequestMessage"/>, then into the HPACK block.</summary>
    [Benchmark(Baseline = true)]
    [BenchmarkCategory("Request")]
    public int RequestThroughMessage() => Encode(RequestForwarder.CreateRequest(_visitor, new RequestForwarder.StrongBox(), null, _deadline, null));

    /// <summary>Visitor headers straight into the HPACK block.</summary>
    [Benchmark]
    [BenchmarkCategory("Request")]
    public int RequestAsFields() => Encode(RequestForwarder.CreateTunnelRequest(_visitor, new RequestForwarder.StrongBox(), null, _deadline, null));

    /// <summary>Decoded fields into an <see cref="HttpResponseMessage"/>'s collections, then to the visitor's headers.</summary>
    [Benchmark(Baseline = true)]
    [BenchmarkCategory("Response")]
    public int ResponseThroughMessage()
    {
        using var upstream = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent([]) };
        foreach (var (name, value) in ResponseFields)
        {
            if (!upstream.Headers.TryAddWithoutValidation(name, value))
            {
                upstream.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }

        _responseHeaders.Clear();
        RequestForwarder.CopyHeaders(upstream.Headers, _responseHeaders, null);
        RequestForwarder.CopyHeaders(upstream.Content.Headers, _responseHeaders, null);
        return _responseHeaders.Count;
    }

    /// <summary>Decoded fields, as a list, to the visitor's headers.</summary>
    [Benchmark]
    [BenchmarkCategory("Response")]
    public int ResponseAsFields()
    {
        var fields = new List<KeyValuePair<string, string>>(ResponseFields.Length);
        fields.AddRange(ResponseFields);
        _responseHeaders.Clear();
        RequestForwarder.CopyResponseFields(fields, _responseHeaders);
        return _responseHeaders.Count;
    }

    private static int Encode(HttpRequestMessage request)
    {
        using (request)
        {
            using var block = Http2RequestHeaders.Encode(request, extendedConnect: false);
            return block.Length;
        }
    }
}
