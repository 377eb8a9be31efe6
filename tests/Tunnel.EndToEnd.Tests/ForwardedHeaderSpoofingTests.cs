using System.Net;
using System.Text.Json;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// Headers in which a visitor claims to be someone else, or claims to be the edge, never reach the app:
/// on a tunnel of this edge, and through the hop to a peer edge.
/// </summary>
public class ForwardedHeaderSpoofingTests(ITestOutputHelper output)
{
    private static readonly (string Name, string Value)[] Spoofed =
    [
        ("X-Tunnel-Probe", "1"),
        ("X-Tunnel-Anything", "1"),
        ("True-Client-IP", "6.6.6.1"),
        ("CF-Connecting-IP", "6.6.6.2"),
        ("X-Original-For", "6.6.6.3"),
        ("X-Original-Host", "evil.example"),
        ("X-Original-Proto", "https"),
        ("X-Original-URL", "/admin"),
        ("X-Real-IP", "6.6.6.4"),
        ("X-Client-IP", "6.6.6.5"),
        ("Forwarded", "for=6.6.6.6;proto=https"),
        ("X_Forwarded_For", "6.6.6.7"),
        ("X_Forwarded_Host", "evil.example"),
        ("x_forwarded_proto", "https"),
        ("X-Forwarded-Server", "evil.example"),
        ("X_Real_IP", "6.6.6.8"),
        ("X_Tunnel_Probe", "1"),
    ];

    [Fact]
    public async Task Spoofed_forwarding_and_probe_headers_in_any_spelling_never_reach_the_app()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

        var seen = await SendSpoofedAsync(client, new Uri($"http://127.0.0.1:{harness.VisitorPort}/headers"), TunnelHarness.Hostname);

        AssertNoneReached(seen, expectedRemote: "127.0.0.1");
    }

    [Fact]
    public async Task Spoofed_forwarding_headers_sent_to_an_edge_without_the_tunnel_do_not_cross_the_hop_to_the_app()
    {
        const string Host = "hello.test";
        await using var cluster = await EdgeCluster.StartAsync();
        var a = await cluster.StartEdgeAsync("edge-a", "r1");
        var b = await cluster.StartEdgeAsync("edge-b", "r2");
        await cluster.StartOriginAsync(Host, [a], haConnections: 2);
        using var visitor = EdgeCluster.VisitorClient(IPAddress.Parse("127.0.0.7"));
        try
        {
            await EdgeCluster.UntilAsync(async () => (await EdgeCluster.GetAsync(visitor, b, Host, "/")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20), "edge B serves the app through A");
        }
        finally
        {
            output.WriteLine(cluster.Output);
        }

        var seen = await SendSpoofedAsync(visitor, new Uri($"http://127.0.0.1:{b.VisitorPort}/headers"), Host);

        Assert.Equal("edge-a", seen.GetProperty("edge").GetString());
        AssertNoneReached(seen, expectedRemote: "127.0.0.7");
    }

    private async Task<JsonElement> SendSpoofedAsync(HttpClient client, Uri url, string host)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Host = host;
        foreach (var (name, value) in Spoofed)
        {
            Assert.True(request.Headers.TryAddWithoutValidation(name, value), name);
        }

        request.Headers.Add("X-Visitor-Note", "kept");
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        output.WriteLine(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(body);
        return document.RootElement.Clone();
    }

    private static void AssertNoneReached(JsonElement seen, string expectedRemote)
    {
        var received = seen.GetProperty("received").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString(), StringComparer.OrdinalIgnoreCase);
        Assert.Equal("kept", received["X-Visitor-Note"]);
        foreach (var (name, _) in Spoofed)
        {
            Assert.False(received.ContainsKey(name), $"{name} reached the app");
        }

        Assert.DoesNotContain(received.Values, v => v is not null && (v.Contains("6.6.6.", StringComparison.Ordinal) || v.Contains("evil.example", StringComparison.Ordinal)));
        Assert.Equal(expectedRemote, seen.GetProperty("remoteIp").GetString());
        Assert.Equal("http", seen.GetProperty("scheme").GetString());
        Assert.Equal("hello.test", seen.GetProperty("host").GetString());
    }
}
