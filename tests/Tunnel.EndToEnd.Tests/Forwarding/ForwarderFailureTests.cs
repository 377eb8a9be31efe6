using System.Diagnostics.Metrics;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Access;
using Tunnel.Edge.Forwarding;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests.Forwarding;

/// <summary>
/// The forwarder's one failure step, without sockets: each <see cref="ForwarderError"/> answers with its
/// status and page, logs its event, and is counted under its <c>error.type</c>.
/// </summary>
public sealed class ForwarderFailureTests
{
    private const string Host = "site.test";

    [Theory]
    [InlineData("NoHost", 400, "The request has no Host header, so the edge cannot tell which site it is for.", 6, "400 no Host", null)]
    [InlineData("VisitorRequest", 413, "Request body too large.", 6, "413 Request body too large.", null)]
    [InlineData("VisitorBodyShort", 400, "The request body ended before its declared Content-Length.", 6, "400 body shorter than its Content-Length", null)]
    [InlineData("NoTunnel", 502, "No origin is connected for site.test. If you run this site, check that its tunnel is up.", 6, "502 no tunnel", "no_tunnel")]
    [InlineData("NoOtherTunnel", 502, "The tunnel connection for site.test failed and no other is connected.", 6, "502 no other tunnel", "connection_lost")]
    [InlineData("NotReady", 503, "site.test is not ready: its app reports that it cannot take requests at the moment. Try again shortly.", 482, "503, every tunnel connection for the route reports its app not ready (2 connection(s)).", "not_ready")]
    [InlineData("TunnelsFull", 503, "Every tunnel connection for site.test is as busy as it may be. Try again shortly.", 23, "503, 2 requests in flight reach the cap per tunnel connection.", "refused")]
    [InlineData("NoStreamFree", 503, "Every tunnel stream for site.test stayed busy for 10 s. Try again shortly.", 222, "503, no tunnel stream came free within 10 s.", "refused")]
    [InlineData("ResponseHeadersTimeout", 504, "The origin for site.test did not begin to answer within 30 s.", 24, "504, the origin sent no response headers within 30 s.", "timeout")]
    [InlineData("TunnelRequest", 502, "The connection to the origin for site.test failed before it answered.", 6, "502 stream reset -> broken pipe", "connection_lost")]
    [InlineData("NoPeerAnswered", 502, "The edges holding the tunnel for site.test could not be reached.", 6, "502 no peer holding the route answered", "connection_lost")]
    [InlineData("PeerRequest", 502, "The edge holding the tunnel for site.test failed before it answered.", 6, "502 peer edge-b: connection refused", "refused")]
    public async Task Each_failure_answers_with_its_status_and_page_logs_its_event_and_counts_its_error_type(
        string error, int status, string detail, int eventId, string logReason, string? errorType)
    {
        var failure = FailureFor(Enum.Parse<ForwarderError>(error));
        var host = failure.Error == ForwarderError.NoHost ? "(none)" : Host;

        var outcome = await FailAsync(failure, host);

        Assert.Equal(status, outcome.Context.Response.StatusCode);
        using var page = JsonDocument.Parse(outcome.Body);
        Assert.Equal(status, page.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(ErrorPages.TitleFor(status), page.RootElement.GetProperty("title").GetString());
        Assert.Equal(detail, page.RootElement.GetProperty("detail").GetString());
        Assert.Equal(host, page.RootElement.GetProperty("host").GetString());
        Assert.Equal(outcome.RequestId, page.RootElement.GetProperty("requestId").GetString());
        Assert.Equal(outcome.RequestId, outcome.Context.Response.Headers[Tunnel.Protocol.TunnelHeaderNames.RequestId].ToString());
        Assert.Equal("no-store", outcome.Context.Response.Headers.CacheControl.ToString());
        Assert.Equal(status == 503 ? "1" : "", outcome.Context.Response.Headers.RetryAfter.ToString());
        var line = Assert.Single(outcome.Logs);
        Assert.Equal(eventId, line.EventId.Id);
        Assert.EndsWith($"Request {outcome.RequestId} for {host}: {logReason}", line.Message, StringComparison.Ordinal);
        Assert.Equal(errorType, UpstreamErrors.Get(outcome.Context));
        Assert.Equal(errorType is null ? [] : [errorType], outcome.CountedErrorTypes);
        Assert.False(outcome.Aborted);
    }

    [Fact]
    public async Task A_response_that_broke_off_is_cut_logged_and_counted_as_a_lost_connection()
    {
        var outcome = await FailAsync(new(ForwarderError.ResponseBroken) { Exception = new IOException("the tunnel closed") }, Host);

        Assert.True(outcome.Aborted);
        Assert.Equal(200, outcome.Context.Response.StatusCode);
        Assert.Empty(outcome.Body);
        var line = Assert.Single(outcome.Logs);
        Assert.Equal(8, line.EventId.Id);
        Assert.Equal($"Request {outcome.RequestId} for {Host}: the origin's response broke off: the tunnel closed", line.Message);
        Assert.Equal(["connection_lost"], outcome.CountedErrorTypes);
    }

    [Fact]
    public async Task A_failure_after_the_response_began_breaks_it_off_instead_of_writing_a_page()
    {
        var outcome = await FailAsync(new(ForwarderError.NoTunnel), Host, started: true);

        Assert.True(outcome.Aborted);
        Assert.Empty(outcome.Body);
        Assert.Equal(["no_tunnel"], outcome.CountedErrorTypes);
    }

    [Fact]
    public async Task A_browser_gets_the_page_as_html()
    {
        var outcome = await FailAsync(new(ForwarderError.NoTunnel), Host, json: false);

        Assert.Equal("text/html; charset=utf-8", outcome.Context.Response.ContentType);
        Assert.Contains("<h1>502 Bad Gateway</h1><p>No origin is connected for site.test. If you run this site, check that its tunnel is up.</p>", outcome.Body, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_forwarder_error_is_covered_by_these_tests()
    {
        var covered = typeof(ForwarderFailureTests)
            .GetMethod(nameof(Each_failure_answers_with_its_status_and_page_logs_its_event_and_counts_its_error_type))!
            .GetCustomAttributes<InlineDataAttribute>()
            .Select(row => Enum.Parse<ForwarderError>((string)row.GetData(null!).Single()[0]))
            .Append(ForwarderError.ResponseBroken);

        Assert.Equal(Enum.GetValues<ForwarderError>().Order(), covered.Order());
    }

    private static ForwarderFailure FailureFor(ForwarderError error) => error switch
    {
        ForwarderError.VisitorRequest => ForwarderFailure.OfVisitor(413, "Request body too large."),
        ForwarderError.TunnelsFull => new(error) { Full = 2 },
        ForwarderError.NotReady => new(error) { NotReady = 2 },
        ForwarderError.NoStreamFree => new(error) { Waited = TimeSpan.FromSeconds(10) },
        ForwarderError.ResponseHeadersTimeout => new(error) { Waited = TimeSpan.FromSeconds(30) },
        ForwarderError.TunnelRequest => new(error) { Exception = new HttpRequestException(HttpRequestError.ResponseEnded, "stream reset", new IOException("broken pipe")) },
        ForwarderError.PeerRequest => new(error) { Exception = new HttpRequestException(HttpRequestError.ConnectionError, "connection refused"), Peer = "edge-b" },
        _ => new(error),
    };

    /// <summary>Runs the failure step inside the edge's request metrics, as the visitor pipeline does.</summary>
    private static async Task<Outcome> FailAsync(ForwarderFailure failure, string host, bool json = true, bool started = false)
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var routes = new RouteTable();
        var metrics = new EdgeMetrics(services.GetRequiredService<IMeterFactory>(), routes);
        var counted = new List<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter == metrics.Meter && instrument.Name == "tunnel.edge.upstream.errors")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) => counted.Add((string)tags.ToArray().Single(tag => tag.Key == "error.type").Value!));
        listener.Start();

        var logs = new LogCapture();
        var lifetime = new RecordingLifetime();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        context.Request.Host = new HostString(Host);
        context.Request.Headers.Accept = json ? "application/json" : "text/html";
        var body = new MemoryStream();
        context.Response.Body = body;
        if (started)
        {
            context.Features.Set<IHttpResponseFeature>(new StartedResponse());
        }

        var requestId = EdgeRequestFeature.For(context).RequestId;
        var pipeline = new EdgeRequestMetrics(c => RequestForwarder.FailAsync(c, logs.CreateLogger(typeof(RequestForwarder).FullName!), host, failure), metrics, new RecentRequests(TimeProvider.System), routes);
        await pipeline.InvokeAsync(context);
        return new Outcome(context, requestId, Encoding.UTF8.GetString(body.ToArray()), logs.Entries, counted, lifetime.Aborted);
    }

    private sealed record Outcome(HttpContext Context, string RequestId, string Body, IReadOnlyCollection<LogCapture.Entry> Logs, IReadOnlyList<string> CountedErrorTypes, bool Aborted);

    private sealed class RecordingLifetime : IHttpRequestLifetimeFeature
    {
        public CancellationToken RequestAborted { get; set; }

        public bool Aborted { get; private set; }

        public void Abort() => Aborted = true;
    }

    private sealed class StartedResponse : HttpResponseFeature
    {
        public override bool HasStarted => true;
    }
}
