using Microsoft.Extensions.Configuration;
using Tunnel.Edge;
using Tunnel.Edge.Access;
using Tunnel.Edge.Hosting;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class AccessRulesTests
{
    private static readonly TimeSpan CurlTimeout = TimeSpan.FromSeconds(30);
    private const string Host = TunnelHarness.Hostname;

    [Fact]
    public async Task A_visitor_in_a_denied_range_gets_403_and_the_origin_sees_nothing()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.Hosts[Host] = new EdgeHostOptions { Deny = ["2001:db8::/32", "127.0.0.2/32"] });
        var seen = new EdgeLimitsTests.OriginCounter();
        await harness.StartOriginAsync(configureApp: seen.Install);

        var denied = await Curl(harness, Host, "127.0.0.2", ["-H", "Accept: application/json"]);
        denied.AssertEdgeError(403, Host, harness.EdgeLogs);
        Assert.Equal(0, seen.Count);

        // The readable page for browsers names the host and the id too.
        var page = await Curl(harness, Host, "127.0.0.2", []);
        Assert.Equal(403, page.Status);
        Assert.Contains(Host, page.Body, StringComparison.Ordinal);
        Assert.Contains(page.Headers["X-Tunnel-Request-Id"], page.Body, StringComparison.Ordinal);

        // HTTP/2 visitors meet the same rules.
        var h2 = await Curl(harness, Host, "127.0.0.2", ["--http2-prior-knowledge", "-H", "Accept: application/json"]);
        h2.AssertEdgeError(403, Host, harness.EdgeLogs);
        Assert.Equal(0, seen.Count);

        Assert.Equal(200, (await Curl(harness, Host, "127.0.0.1", [])).Status);
        Assert.Equal(1, seen.Count);
    }

    [Fact]
    public async Task Only_visitors_in_the_allow_list_of_a_wildcard_entry_get_through()
    {
        const string host = "a.example.test";
        await using var harness = await TunnelHarness.StartAsync(o => o.Hosts["*.example.test"] = new EdgeHostOptions { Allow = ["127.0.0.1", "::1/128"] });
        var seen = new EdgeLimitsTests.OriginCounter();
        await harness.StartOriginAsync(hostnames: [host], configureApp: seen.Install);

        var refused = await Curl(harness, host, "127.0.0.2", ["-H", "Accept: application/json"]);
        refused.AssertEdgeError(403, host, harness.EdgeLogs);
        Assert.Equal(0, seen.Count);

        Assert.Equal(200, (await Curl(harness, host, "127.0.0.1", [])).Status);
        Assert.Equal(1, seen.Count);
    }

    [Fact]
    public async Task A_visitor_over_the_rate_limit_gets_429_with_Retry_After_while_others_go_on()
    {
        // One permit every 10 s with a burst of 3: the fourth quick request is over.
        await using var harness = await TunnelHarness.StartAsync(o => o.Hosts[Host] = new EdgeHostOptions { RateLimit = new EdgeRateLimitOptions { PermitsPerSecond = 0.1, Burst = 3 } });
        var seen = new EdgeLimitsTests.OriginCounter();
        await harness.StartOriginAsync(configureApp: seen.Install);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(200, (await Curl(harness, Host, "127.0.0.2", [])).Status);
        }

        var limited = await Curl(harness, Host, "127.0.0.2", ["-H", "Accept: application/json"]);
        limited.AssertEdgeError(429, Host, harness.EdgeLogs);
        Assert.InRange(int.Parse(limited.Headers["Retry-After"], System.Globalization.CultureInfo.InvariantCulture), 1, 10);
        Assert.Equal(3, seen.Count);

        // The bucket is per visitor IP.
        Assert.Equal(200, (await Curl(harness, Host, "127.0.0.1", [])).Status);
        Assert.Equal(4, seen.Count);
    }

    [Fact]
    public void Misconfigured_rules_stop_the_edge_at_start_with_every_problem_listed()
    {
        var options = new EdgeOptions();
        options.Hosts["app.example.com"] = new EdgeHostOptions
        {
            Allow = ["10.0.0.1/8", "nonsense"],
            RateLimit = new EdgeRateLimitOptions { PermitsPerSecond = 0 },
        };
        options.Hosts["bad host"] = new EdgeHostOptions();
        options.Limits.MaxConcurrentRequestsPerConnection = 0;

        var error = Assert.Throws<InvalidOperationException>(() => EdgeServer.Create(options));
        Assert.Contains("'10.0.0.1/8'", error.Message, StringComparison.Ordinal);
        Assert.Contains("'nonsense'", error.Message, StringComparison.Ordinal);
        Assert.Contains("RateLimit:PermitsPerSecond", error.Message, StringComparison.Ordinal);
        Assert.Contains("'bad host'", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxConcurrentRequestsPerConnection", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_edge_section_binds_limits_and_hosts_from_json()
    {
        const string json = """
            { "Edge": {
                "Limits": { "MaxRequestHeaderCount": 50, "ResponseHeadersTimeout": "00:00:30", "MaxConcurrentRequestsPerConnection": 80 },
                "Hosts": {
                  "app.example.com": { "MaxRequestBodySize": 1048576, "Deny": [ "192.0.2.0/24" ], "RateLimit": { "PermitsPerSecond": 5, "Burst": 20 } },
                  "*.example.com": { "Allow": [ "2001:db8::/32" ], "MaxConcurrentRequests": 10 }
                } } }
            """;
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json)))
            .Build();
        var options = new EdgeOptions();
        configuration.GetSection(EdgeOptions.SectionName).Bind(options);

        Assert.Equal(50, options.Limits.MaxRequestHeaderCount);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Limits.ResponseHeadersTimeout);
        Assert.Equal(80, options.Limits.MaxConcurrentRequestsPerConnection);
        Assert.Equal(EdgeLimitsOptions.DefaultMaxRequestHeadersTotalSize, options.Limits.MaxRequestHeadersTotalSize);
        Assert.Equal(1048576, options.Hosts["APP.example.com"].MaxRequestBodySize);
        Assert.Equal(["192.0.2.0/24"], options.Hosts["app.example.com"].Deny);
        Assert.Equal(20, options.Hosts["app.example.com"].RateLimit!.Burst);
        Assert.Equal(["2001:db8::/32"], options.Hosts["*.example.com"].Allow);
        Assert.Equal(10, options.Hosts["*.example.com"].MaxConcurrentRequests);
    }

    private static async Task<EdgeErrorResponse> Curl(TunnelHarness harness, string host, string from, string[] arguments)
    {
        var result = await Cli.RunAsync("curl", [.. harness.CurlResolve(host), "-sS", "-i", "--interface", from, .. arguments, harness.VisitorUrl("/", host)], CurlTimeout);
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        return EdgeErrorResponse.Parse(result.Stdout);
    }
}
