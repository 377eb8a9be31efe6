using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using GrpcOrigin;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Real gRPC clients against a Grpc.AspNetCore service, directly and through the edge, over h2c and TLS:
/// every call must end the same way on both paths (status, message, metadata, replies).
/// </summary>
public class GrpcTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;

    // Non-ASCII and percent signs: grpc-message is percent-encoded UTF-8, which must pass unchanged.
    private const string NonAscii = "no greeting for ünïcødé ✓ 日本 %";

    private static readonly TimeSpan NodeTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task The_dotnet_client_sees_the_same_calls_through_the_edge_as_directly_over_h2c_and_tls()
    {
        await using var site = await GrpcSite.StartAsync();
        var results = new Dictionary<string, Dictionary<string, string>>();
        foreach (var target in site.Targets)
        {
            results[target.Name] = await RunDotnetSuiteAsync(site, target);
            foreach (var (call, seen) in results[target.Name])
            {
                output.WriteLine($"{target.Name} | {call} | {seen}");
            }
        }

        var direct = results["direct h2c"];
        Assert.Equal("NotFound: " + NonAscii + " 5 header=echo-value trailer=trailer-value", direct["unary status 5 before a reply"]);
        Assert.StartsWith("Unimplemented", direct["unimplemented method"], StringComparison.Ordinal);
        Assert.Equal("OK replies=1 bytes=4194304 header=echo-value trailer=trailer-value", direct["unary 4 MiB each way"]);
        Assert.Equal("DeadlineExceeded", direct["deadline exceeded"]);
        Assert.Equal("Cancelled replies=1", direct["cancelled mid-stream"]);
        Assert.Equal("Unauthenticated: " + NonAscii + " replies=3 bytes=300 trailer=trailer-value", direct["server stream status 16 after 3 replies"]);
        AssertSame(results, "direct h2c", "edge h2c");
        AssertSame(results, "direct TLS", "edge TLS");
        AssertSame(results, "direct h2c", "direct TLS");
    }

    [Fact]
    public async Task Grpc_js_sees_the_same_calls_through_the_edge_as_directly_over_h2c_and_tls()
    {
        await using var site = await GrpcSite.StartAsync();
        var results = new Dictionary<string, Dictionary<string, string>>();
        foreach (var target in site.Targets)
        {
            var tag = "js-" + target.Name.Replace(' ', '-');
            results[target.Name] = await RunGrpcJsAsync(target.Port, target.Tls ? site.SiteCaPath : null, tag);
            Assert.True(site.Cancellations.Saw($"{tag}-deadline"), $"{target.Name}: the app's CancellationToken fired when the deadline passed");
            Assert.True(site.Cancellations.Saw($"{tag}-cancel"), $"{target.Name}: the app's CancellationToken fired when the client cancelled");
        }

        var direct = results["direct h2c"];
        using (var notFound = JsonDocument.Parse(direct["unary status 5 before a reply"]))
        {
            Assert.Equal(5, notFound.RootElement.GetProperty("code").GetInt32());
            Assert.Equal(NonAscii + " 5", notFound.RootElement.GetProperty("details").GetString());
            Assert.Equal("echo-value", notFound.RootElement.GetProperty("header").GetString());
        }

        Assert.Equal(12, Property(direct["unimplemented method"], "code"));
        Assert.Equal(4, Property(direct["deadline exceeded"], "code"));
        Assert.Equal(1, Property(direct["cancelled mid-stream"], "code"));
        Assert.Equal(100, Property(direct["100 concurrent calls on one channel"], "ok"));
        AssertSame(results, "direct h2c", "edge h2c");
        AssertSame(results, "direct TLS", "edge TLS");
        AssertSame(results, "direct h2c", "direct TLS");
    }

    /// <summary>
    /// A gRPC request for Probe/Unary that fails with NOT_FOUND before any reply: one length-prefixed
    /// message holding fail_code = 5 (field 1, varint).
    /// </summary>
    private static readonly byte[] NotFoundUnaryCall = [0, 0, 0, 0, 2, 0x08, 5];

    private static readonly string[] GrpcHeaders = ["content-type: application/grpc", "te: trailers"];

    [Fact]
    public async Task Responses_that_end_at_their_headers_reach_an_http2_visitor_as_one_headers_frame_that_ends_the_stream()
    {
        await using var site = await GrpcSite.StartAsync();
        foreach (var target in site.Targets)
        {
            var url = $"{(target.Tls ? "https" : "http")}://127.0.0.1:{target.Port}";
            await AssertEndsAtHeadersAsync(target.Name, url, GrpcSite.Host);
        }

        // A failed call is an HTTP 200; the edge's metrics tell it by its gRPC status.
        var metrics = await Cli.RunAsync("curl", ["-sS", $"http://127.0.0.1:{site.Harness.Edge.AdminEndPoint!.Port}/metrics"], TimeSpan.FromSeconds(30));
        Assert.Contains(metrics.Stdout.Split('\n'), l => l.StartsWith("tunnel_edge_requests_total{", StringComparison.Ordinal) && l.Contains("rpc_grpc_status_code=\"5\"", StringComparison.Ordinal) && l.Contains("tunnel_route=\"grpc.test\"", StringComparison.Ordinal));

        // What an HTTP/1.1 visitor of a gRPC service gets: the status fields as response headers of an
        // empty 200 (gRPC itself needs HTTP/2, so such a client is not one that works).
        var call = Path.Combine(site.Harness.Pki.Directory, "not-found.call");
        await File.WriteAllBytesAsync(call, NotFoundUnaryCall);
        var http11 = await Cli.RunAsync("curl", ["-sS", "-i", "--http1.1", "--data-binary", "@" + call, "-H", "content-type: application/grpc",
            "--resolve", $"{GrpcSite.Host}:{site.Harness.VisitorPort}:127.0.0.1", $"http://{GrpcSite.Host}:{site.Harness.VisitorPort}/probe.Probe/Unary"], TimeSpan.FromSeconds(30));
        output.WriteLine(http11.Stdout);
        Assert.Contains("grpc-status: 5", http11.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("content-length: 0", http11.Stdout, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// 204, 304, HEAD, an empty 200 and a trailers-only gRPC error each arrive as a single HEADERS frame
    /// with END_STREAM; a response with a body (the control) arrives with DATA frames.
    /// </summary>
    private static async Task AssertEndsAtHeadersAsync(string name, string url, string authority)
    {
        var cases = new (string What, Task<IReadOnlyList<Nghttp.Frame>> Frames)[]
        {
            ("204", Nghttp.ResponseFramesAsync(url + "/status/204", authority)),
            ("304", Nghttp.ResponseFramesAsync(url + "/status/304", authority)),
            ("HEAD", Nghttp.ResponseFramesAsync(url + "/", authority, method: "HEAD")),
            ("empty 200", Nghttp.ResponseFramesAsync(url + "/empty", authority)),
            ("gRPC NOT_FOUND before a reply", Nghttp.ResponseFramesAsync(url + "/probe.Probe/Unary", authority, "POST", NotFoundUnaryCall, GrpcHeaders)),
        };
        foreach (var (what, frames) in cases)
        {
            var received = await frames;
            Assert.True(received is [{ Type: "HEADERS", EndsStream: true }],
                $"{name}, {what}: expected one HEADERS frame that ends the stream, got {string.Join(", ", received)}");
        }

        var control = await Nghttp.ResponseFramesAsync(url + "/", authority);
        Assert.True(control is [{ Type: "HEADERS", EndsStream: false }, .., { Type: "DATA", EndsStream: true }],
            $"{name}, a response with a body: expected HEADERS then DATA, got {string.Join(", ", control)}");
    }

    [Fact]
    public async Task Across_a_cluster_hop_responses_end_at_their_headers_and_grpc_js_sees_the_same_calls()
    {
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output);
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        var app = await cluster.StartOriginAsync(GrpcSite.Host, [a], configureBuilder: builder => builder.Services.AddProbeService(), configureApp: GrpcSite.MapEndpoints);
        using var visitor = EdgeCluster.VisitorClient(System.Net.IPAddress.Loopback);
        await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, b, GrpcSite.Host, "/")).Status == System.Net.HttpStatusCode.OK, TimeSpan.FromSeconds(20), "edge B serves the app through A");

        await AssertEndsAtHeadersAsync("through a hop", $"http://127.0.0.1:{b.VisitorPort}", GrpcSite.Host);
        var results = new Dictionary<string, Dictionary<string, string>>
        {
            ["edge with the tunnel"] = await RunGrpcJsAsync(a.VisitorPort, null, "hop-a"),
            ["edge one hop away"] = await RunGrpcJsAsync(b.VisitorPort, null, "hop-b"),
        };
        var cancellations = app.Services.GetRequiredService<CancellationLog>();
        Assert.True(cancellations.Saw("hop-b-deadline") && cancellations.Saw("hop-b-cancel"), "the app's CancellationToken fired through the hop");
        AssertSame(results, "edge with the tunnel", "edge one hop away");
    }

    /// <summary>Runs the Node client's calls against 127.0.0.1:<paramref name="port"/>; with <paramref name="caPath"/>, over TLS.</summary>
    private static async Task<Dictionary<string, string>> RunGrpcJsAsync(int port, string? caPath, string tag)
    {
        var client = Path.Combine(Repository.Root, "tests", "grpc-js");
        Assert.True(Directory.Exists(Path.Combine(client, "node_modules", "@grpc", "grpc-js")),
            $"the gRPC client for Node is not installed: run `npm ci --prefix {client}` (needs Debian's nodejs and npm)");
        string[] tls = caPath is null ? [] : ["--ca", caPath];
        var run = await Cli.RunAsync("node", [Path.Combine(client, "probe-client.js"), "--target", $"127.0.0.1:{port}", "--authority", GrpcSite.Host,
            "--proto", Path.Combine(Repository.Root, "test-apps", "GrpcOrigin", "Protos", "probe.proto"), "--tag", tag, .. tls], NodeTimeout);
        Assert.True(run.ExitCode == 0, $"{tag}: {Cli.Describe(run)}");
        using var document = JsonDocument.Parse(run.Stdout);
        return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetRawText());
    }

    private static int Property(string json, string name)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.GetProperty(name).GetInt32();
    }

    private void AssertSame(Dictionary<string, Dictionary<string, string>> results, string expectedName, string actualName)
    {
        var expected = results[expectedName];
        var actual = results[actualName];
        var differences = expected.Keys.Union(actual.Keys)
            .Where(k => expected.GetValueOrDefault(k) != actual.GetValueOrDefault(k))
            .Select(k => $"{k}: {expectedName} {expected.GetValueOrDefault(k) ?? "(missing)"} | {actualName} {actual.GetValueOrDefault(k) ?? "(missing)"}")
            .ToList();
        foreach (var difference in differences)
        {
            output.WriteLine(difference);
        }

        Assert.True(differences.Count == 0, $"{actualName} differs from {expectedName} in {differences.Count} calls:\n" + string.Join("\n", differences));
    }

    /// <summary>The same calls as the Node client makes, each summed up as one line.</summary>
    private static async Task<Dictionary<string, string>> RunDotnetSuiteAsync(GrpcSite site, GrpcTarget target)
    {
        using var channel = site.Channel(target);
        var client = new Probe.ProbeClient(channel);
        var tag = "net-" + target.Name.Replace(' ', '-');
        var results = new Dictionary<string, string>();
        for (var code = 1; code <= 16; code++)
        {
            results[$"unary status {code} before a reply"] = await UnaryAsync(client, new ProbeRequest { FailCode = code, FailMessage = $"{NonAscii} {code}" });
        }

        results["unary ok with metadata"] = await UnaryAsync(client, new ProbeRequest { ReplySize = 10, Payload = ByteString.CopyFrom(new byte[3]) });
        results["unimplemented method"] = await UnimplementedAsync(channel);
        results["unary 4 MiB each way"] = await UnaryAsync(client, new ProbeRequest { ReplySize = 4 * MiB, Payload = ByteString.CopyFrom(new byte[4 * MiB]) });
        // Every status after the first reply (real trailers), and before any reply of a stream.
        for (var code = 1; code <= 16; code++)
        {
            results[$"server stream status {code} after 3 replies"] = await ServerStreamAsync(client, new ProbeRequest { Replies = 3, ReplySize = 100, FailCode = code, FailMessage = NonAscii });
        }

        foreach (var code in new[] { 5, 13 })
        {
            results[$"server stream status {code} before a reply"] = await ServerStreamAsync(client, new ProbeRequest { Replies = 0, FailCode = code, FailMessage = NonAscii });
        }

        results["server stream ok, 4 MiB replies"] = await ServerStreamAsync(client, new ProbeRequest { Replies = 2, ReplySize = 4 * MiB });
        results["client stream ok"] = await ClientStreamAsync(client, [new() { Payload = ByteString.CopyFrom(new byte[1000]) }, new() { Payload = ByteString.CopyFrom(new byte[4 * MiB]) }, new() { Payload = ByteString.CopyFrom(new byte[1]) }]);
        results["client stream status 7"] = await ClientStreamAsync(client, [new() { Payload = ByteString.CopyFrom(new byte[10]) }, new() { FailCode = 7, FailMessage = NonAscii }]);
        results["bidi ok"] = await BidiAsync(client, [.. Enumerable.Range(1, 5).Select(n => new ProbeRequest { Payload = ByteString.CopyFrom(new byte[n * 100]), ReplySize = n })]);
        results["bidi status 9 mid-stream"] = await BidiAsync(client, [new() { ReplySize = 1 }, new() { ReplySize = 1 }, new() { FailCode = 9, FailMessage = NonAscii }]);

        var deadlineTag = tag + "-deadline";
        var deadline = await UnaryAsync(client, new ProbeRequest { WaitForCancel = true, Tag = deadlineTag }, DateTime.UtcNow.AddMilliseconds(500), withMetadata: false);
        await Wait.UntilAsync(() => site.Cancellations.Saw(deadlineTag), TimeSpan.FromSeconds(10), $"{target.Name}: the app sees the deadline pass");
        results["deadline exceeded"] = deadline;

        var cancelTag = tag + "-cancel";
        var cancelled = await CancelMidStreamAsync(client, cancelTag);
        await Wait.UntilAsync(() => site.Cancellations.Saw(cancelTag), TimeSpan.FromSeconds(10), $"{target.Name}: the app sees the client cancel");
        results["cancelled mid-stream"] = cancelled;

        var many = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => client.UnaryAsync(new ProbeRequest { ReplySize = i }).ResponseAsync));
        results["100 concurrent calls on one channel"] = $"ok={many.Length} bytes={many.Sum(r => r.Payload.Length)}";
        return results;
    }

    private static Metadata EchoMetadata() => new() { { ProbeService.EchoHeader, "echo-value" }, { ProbeService.EchoTrailer, "trailer-value" } };

    private static string Describe(RpcException ex) => $"{ex.StatusCode}: {ex.Status.Detail}";

    private static string Metadata(Metadata? headers, Metadata? trailers) =>
        $"header={headers?.GetValue(ProbeService.EchoHeader) ?? trailers?.GetValue(ProbeService.EchoHeader) ?? "-"} trailer={trailers?.GetValue(ProbeService.EchoTrailer) ?? "-"}";

    private static async Task<string> UnaryAsync(Probe.ProbeClient client, ProbeRequest request, DateTime? deadline = null, bool withMetadata = true)
    {
        using var call = client.UnaryAsync(request, withMetadata ? EchoMetadata() : null, deadline);
        try
        {
            var reply = await call.ResponseAsync;
            return $"OK replies=1 bytes={reply.Payload.Length} {Metadata(await call.ResponseHeadersAsync, call.GetTrailers())}";
        }
        catch (RpcException ex) when (!withMetadata)
        {
            return ex.StatusCode.ToString();
        }
        catch (RpcException ex)
        {
            // A trailers-only response carries its metadata in the one header block.
            return $"{Describe(ex)} {Metadata(null, ex.Trailers)}";
        }
    }

    private static async Task<string> UnimplementedAsync(GrpcChannel channel)
    {
        var method = new Method<byte[], byte[]>(MethodType.Unary, "probe.Probe", "Missing", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        try
        {
            await channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(), []);
            return "OK";
        }
        catch (RpcException ex)
        {
            return Describe(ex);
        }
    }

    private static async Task<string> ServerStreamAsync(Probe.ProbeClient client, ProbeRequest request)
    {
        using var call = client.ServerStream(request, EchoMetadata());
        var replies = 0;
        long bytes = 0;
        try
        {
            await foreach (var reply in call.ResponseStream.ReadAllAsync())
            {
                replies++;
                bytes += reply.Payload.Length;
            }

            return $"OK replies={replies} bytes={bytes} {Metadata(await call.ResponseHeadersAsync, call.GetTrailers())}";
        }
        catch (RpcException ex)
        {
            return $"{Describe(ex)} replies={replies} bytes={bytes} trailer={ex.Trailers.GetValue(ProbeService.EchoTrailer) ?? "-"}";
        }
    }

    private static async Task<string> ClientStreamAsync(Probe.ProbeClient client, ProbeRequest[] requests)
    {
        using var call = client.ClientStream(EchoMetadata());
        try
        {
            foreach (var request in requests)
            {
                await call.RequestStream.WriteAsync(request);
            }

            await call.RequestStream.CompleteAsync();
            var reply = await call.ResponseAsync;
            return $"OK received={reply.Received} {Metadata(await call.ResponseHeadersAsync, call.GetTrailers())}";
        }
        catch (RpcException ex)
        {
            return $"{Describe(ex)} trailer={ex.Trailers.GetValue(ProbeService.EchoTrailer) ?? "-"}";
        }
    }

    private static async Task<string> BidiAsync(Probe.ProbeClient client, ProbeRequest[] requests)
    {
        using var call = client.Bidi(EchoMetadata());
        var replies = 0;
        long bytes = 0;
        try
        {
            // One message at a time: each reply must come back before the next message goes out.
            foreach (var request in requests)
            {
                await call.RequestStream.WriteAsync(request);
                if (!await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    break;
                }

                replies++;
                bytes += call.ResponseStream.Current.Payload.Length;
            }

            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                replies++;
            }

            return $"OK replies={replies} bytes={bytes} {Metadata(await call.ResponseHeadersAsync, call.GetTrailers())}";
        }
        catch (RpcException ex)
        {
            return $"{Describe(ex)} replies={replies} trailer={ex.Trailers.GetValue(ProbeService.EchoTrailer) ?? "-"}";
        }
    }

    /// <summary>Cancels a server stream after its first reply.</summary>
    private static async Task<string> CancelMidStreamAsync(Probe.ProbeClient client, string tag)
    {
        using var cancel = new CancellationTokenSource();
        using var call = client.ServerStream(new ProbeRequest { Replies = 1, ReplySize = 16, WaitForCancel = true, Tag = tag }, EchoMetadata(), cancellationToken: cancel.Token);
        var replies = 0;
        try
        {
            await foreach (var reply in call.ResponseStream.ReadAllAsync(CancellationToken.None))
            {
                replies++;
                await cancel.CancelAsync();
            }

            return $"OK replies={replies}";
        }
        catch (RpcException ex)
        {
            return $"{ex.StatusCode} replies={replies}";
        }
    }
}
