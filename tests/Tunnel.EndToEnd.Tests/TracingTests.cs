using System.Collections.Concurrent;
using System.Diagnostics;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class TracingTests
{
    [Fact]
    public async Task The_apps_request_span_is_a_child_of_the_edges_span_in_one_trace()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "Tunnel.Edge" or "Microsoft.AspNetCore" or "Tunnel.Transport",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();

        // The visitor sends its own trace context: the edge continues it.
        var visitorTrace = ActivityTraceId.CreateRandom();
        var visitorSpan = ActivitySpanId.CreateRandom();
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(), "-sS", "--fail", "-H", $"traceparent: 00-{visitorTrace}-{visitorSpan}-01", harness.VisitorUrl("/headers?trace=1")], TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, Cli.Describe(result));

        Activity? edgeSpan = null;
        Activity? appSpan = null;
        await Wait.UntilAsync(() =>
        {
            edgeSpan = spans.FirstOrDefault(a => a.Source.Name == "Tunnel.Edge" && (string?)a.GetTagItem("url.path") == "/headers");
            appSpan = edgeSpan is null ? null : spans.FirstOrDefault(a => a.Source.Name == "Microsoft.AspNetCore" && a.ParentSpanId == edgeSpan.SpanId);
            return appSpan is not null;
        }, TimeSpan.FromSeconds(10), "the app's span, child of the edge's, is recorded");

        Assert.Equal(visitorTrace, edgeSpan!.TraceId);
        Assert.Equal(edgeSpan.TraceId, appSpan!.TraceId);
        Assert.Equal(edgeSpan.SpanId, appSpan.ParentSpanId);
        Assert.Contains(spans, a => a.Source.Name == "Tunnel.Transport" && a.OperationName == "tunnel.dial" && (string?)a.GetTagItem("tunnel.edge.name") == "test-edge");
    }
}
