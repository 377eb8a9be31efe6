using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Tunnel.Transport;

namespace Tunnel.EndToEnd.Tests.Passthrough;

/// <summary>
/// HTTP passthrough: the edge routes a cleartext visitor connection by its first request's host and
/// relays its bytes; the app's Kestrel serves the connection itself and sees the visitor's address
/// on the connection. Real curl and h2load against an in-process edge and origin on loopback.
/// </summary>
public class HttpPassthroughTests
{
    private const string Host = "pass.test";
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("--http1.1", "HTTP/1.1")]
    [InlineData("--http2-prior-knowledge", "HTTP/2")]
    public async Task Curl_reaches_the_app_through_http_passthrough_and_the_app_sees_the_visitor_from_the_connection(string flag, string protocol)
    {
        await using var harness = await TunnelHarness.StartAsync();
        await StartPassthroughOriginAsync(harness);

        // From an address of its own, with a forged X-Forwarded-For that must change nothing.
        var result = await Cli.RunAsync("curl", ["-sS", "--fail", flag, "--interface", "127.0.0.7", "-H", "X-Forwarded-For: 203.0.113.9",
            .. harness.CurlResolve(Host), harness.VisitorUrl("/headers", Host)], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal("127.0.0.7", root.GetProperty("remoteIp").GetString());
        Assert.NotEqual(0, root.GetProperty("remotePort").GetInt32());
        Assert.Equal(protocol, root.GetProperty("protocol").GetString());
        Assert.Equal(nameof(TunnelMode.HttpPassthrough), root.GetProperty("passthrough").GetString());
        Assert.False(root.GetProperty("viaTunnel").GetBoolean(), "a passthrough connection does not carry the tunnel's trusted fields");
        Assert.Equal("203.0.113.9", root.GetProperty("received").EnumerateObject().Single(p => p.NameEquals("X-Forwarded-For") || p.NameEquals("x-forwarded-for")).Value.GetString());

        // The edge did not parse it as a request: its request counter and forwarded headers never saw it.
        Assert.DoesNotContain(harness.EdgeLogs.Entries, e => e.EventId.Name == "RequestForwarded" && e.Message.Contains(Host, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_request_for_another_host_on_a_passthrough_connection_gets_421_and_the_route_s_own_host_is_served()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await StartPassthroughOriginAsync(harness);

        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(harness.Edge.VisitorEndPoint);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var first = await ExchangeAsync(stream, $"GET / HTTP/1.1\r\nHost: {Host}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200", first, StringComparison.Ordinal);

        // The same connection, now for a name the edge routes elsewhere (request mode): a coalescing
        // browser must be told to open another connection.
        var second = await ExchangeAsync(stream, $"GET / HTTP/1.1\r\nHost: {TunnelHarness.Hostname}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 421", second, StringComparison.Ordinal);
    }

    [Fact]
    public async Task H2load_through_http_passthrough_completes_every_request()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await StartPassthroughOriginAsync(harness);
        var port = harness.VisitorPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var result = await Cli.RunAsync("h2load", ["-n", "2000", "-c", "4", "-m", "10", $"--connect-to=127.0.0.1:{port}", $"http://{Host}:{port}/"], TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Matches("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed", result.Stdout);
    }

    [Fact]
    public async Task A_host_without_a_passthrough_route_is_still_served_per_request_on_the_same_port()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await StartPassthroughOriginAsync(harness);
        var result = await Cli.RunAsync("curl", ["-sS", "--fail", .. harness.CurlResolve(), harness.VisitorUrl("/headers")], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.True(json.RootElement.GetProperty("viaTunnel").GetBoolean());
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("passthrough").ValueKind);
    }

    [Fact]
    public async Task The_host_s_deny_rule_applies_to_each_passthrough_connection_and_a_denied_visitor_gets_the_edge_s_403()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Hosts[Host] = new Tunnel.Edge.Access.EdgeHostOptions { Deny = ["127.0.0.7/32"] });
        await StartPassthroughOriginAsync(harness);

        var denied = await Cli.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.7", .. harness.CurlResolve(Host), harness.VisitorUrl("/headers", Host)], CurlTimeout);
        Assert.Equal("403", denied.Stdout.Trim());
        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "ConnectionDenied" && e.Message.Contains("127.0.0.7", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10), "the edge logs the refused connection with the rule");

        var allowed = await Cli.RunAsync("curl", ["-sS", "--fail", "--interface", "127.0.0.8", .. harness.CurlResolve(Host), harness.VisitorUrl("/headers", Host)], CurlTimeout);
        Assert.True(allowed.ExitCode == 0, Cli.Describe(allowed));
        using var json = JsonDocument.Parse(allowed.Stdout);
        Assert.Equal(nameof(TunnelMode.HttpPassthrough), json.RootElement.GetProperty("passthrough").GetString());
    }

    internal static Task<TunnelHarness.Origin> StartPassthroughOriginAsync(TunnelHarness harness, Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions>? configure = null) =>
        harness.StartOriginAsync(
            certificateDomains: [TunnelHarness.Hostname, Host],
            configureBuilder: builder => builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenTunnel(Host, TunnelMode.HttpPassthrough, configure)));

    /// <summary>Sends one request and reads one response with a Content-Length body.</summary>
    private static async Task<string> ExchangeAsync(NetworkStream stream, string request)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var received = new StringBuilder();
        var buffer = new byte[4096];
        while (true)
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            if (read == 0)
            {
                return received.ToString();
            }

            received.Append(Encoding.ASCII.GetString(buffer, 0, read));
            var text = received.ToString();
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0)
            {
                continue;
            }

            var length = text.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)) is { } header
                ? int.Parse(header["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture)
                : 0;
            if (text.Length >= end + 4 + length)
            {
                return text;
            }
        }
    }
}
