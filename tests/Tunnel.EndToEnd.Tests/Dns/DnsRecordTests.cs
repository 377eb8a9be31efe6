using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge;
using Tunnel.Edge.Dns;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Dns;

/// <summary>
/// Route hostnames published in the operator's zone: a real BIND named (a dynamic zone, a TSIG key) as the
/// DNS server, the real edge writing to it with RFC 2136 updates, dig reading what is there.
/// </summary>
public class DnsRecordTests(ITestOutputHelper output)
{
    private const string App = "app.example.test";
    private const string Target = "edge.example.net";
    private const string UpdatesMetric = "tunnel_edge_dns_updates_total";
    private static readonly TimeSpan RecordTimeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Publishes_a_cname_when_a_new_hostname_registers_and_shows_it_on_the_status_page_and_admin_api()
    {
        await using var named = await NamedProcess.StartAsync();
        using var dump = new WriteOnDispose(output, () => named.Log);
        var token = "test-token-" + Guid.NewGuid().ToString("N");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            UseZone(o, named);
            o.AdminTokenPath = Path.Combine(Path.GetDirectoryName(o.CaCertificatePath)!, "admin.token");
            TestPki.WriteSecret(o.AdminTokenPath, token + "\n");
        });
        await harness.StartOriginAsync([App]);

        await UntilRecordAsync(named, App, "CNAME", [Target + "."]);
        Assert.Equal(["\"tunnel-edge/test-edge\""], await named.DigAsync("_tunnel-owner." + App, "TXT"));
        Assert.Equal(1, named.CountInLog($"adding an RR at '{App}' CNAME {Target}."));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var admin = $"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}";
        var page = await http.GetStringAsync(admin + "/");
        Assert.Contains("<h2>DNS records</h2>", page, StringComparison.Ordinal);
        Assert.Contains($"<code>{App}</code></td><td>CNAME</td><td><code>{Target}.</code></td><td>example.test</td><td>published</td>", page, StringComparison.Ordinal);

        using var request = new HttpRequestMessage(HttpMethod.Get, admin + "/api/v1/dns");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var record = Assert.Single(json.RootElement.GetProperty("records").EnumerateArray());
        Assert.Equal(App, record.GetProperty("name").GetString());
        Assert.Equal("CNAME", record.GetProperty("type").GetString());
        Assert.Equal(Target + ".", record.GetProperty("value").GetString());
        Assert.Equal("example.test", record.GetProperty("zone").GetString());
        Assert.Equal("published", record.GetProperty("state").GetString());
        Assert.Equal("published", record.GetProperty("lastResult").GetString());
        Assert.Equal(JsonValueKind.Null, record.GetProperty("lastError").ValueKind);

        var metrics = await http.GetStringAsync(admin + "/metrics");
        Assert.Equal(1, EdgeCluster.Series(metrics, UpdatesMetric, ("operation", "publish"), ("reason", "published"), ("result", "success")));
    }

    [Fact]
    public async Task Publishes_address_records_at_the_zone_apex_and_nothing_for_names_no_pattern_covers()
    {
        await using var named = await NamedProcess.StartAsync();
        using var dump = new WriteOnDispose(output, () => named.Log);
        await using var harness = await TunnelHarness.StartAsync(o => UseZone(o, named, zone => zone.Patterns = ["example.test", "*.apps.example.test"]));
        await harness.StartOriginAsync(["example.test", "other.example.test", "web.apps.example.test"]);

        await UntilRecordAsync(named, "example.test", "A", ["192.0.2.10"]);
        Assert.Equal(["2001:db8::10"], await named.DigAsync("example.test", "AAAA"));
        await UntilRecordAsync(named, "web.apps.example.test", "CNAME", [Target + "."]);
        Assert.Empty(await named.DigAsync("other.example.test", "ANY"));
        Assert.Equal(0, named.CountInLog("adding an RR at 'other.example.test'"));
    }

    [Fact]
    public async Task Named_refuses_an_unsigned_update_and_the_edge_with_a_wrong_secret_says_why_and_counts_it()
    {
        await using var named = await NamedProcess.StartAsync();
        using var dump = new WriteOnDispose(output, () => named.Log);

        var (exitCode, answer) = await named.NsupdateAsync(signed: false, "update add intruder.example.test 60 A 192.0.2.66");
        Assert.NotEqual(0, exitCode);
        Assert.Contains("REFUSED", answer, StringComparison.Ordinal);
        Assert.Contains("update 'example.test/IN' denied", named.Log, StringComparison.Ordinal);
        Assert.Empty(await named.DigAsync("intruder.example.test", "A"));

        var wrongSecret = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await using var harness = await TunnelHarness.StartAsync(o => UseZone(o, named, zone =>
        {
            zone.KeySecretPath = null;
            zone.KeySecret = wrongSecret;
        }));
        await harness.StartOriginAsync([App]);

        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Id == 404 && e.Message.Contains("BADSIG", StringComparison.Ordinal)), RecordTimeout, "the edge logs that named refused its update for a bad signature");
        var refused = harness.EdgeLogs.Entries.First(e => e.EventId.Id == 404);
        output.WriteLine(refused.Message);
        Assert.Contains(App, refused.Message, StringComparison.Ordinal);
        Assert.Contains("secret", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(harness.EdgeLogs.Entries, e => e.Message.Contains(wrongSecret, StringComparison.Ordinal));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics");
        Assert.True(EdgeCluster.Series(metrics, UpdatesMetric, ("operation", "publish"), ("reason", "badsig"), ("result", "failure")) >= 1, metrics);
        Assert.Empty(await named.DigAsync(App, "CNAME"));
        Assert.Contains("request has invalid signature", named.Log, StringComparison.Ordinal);

        // A key named wrong: named answers BADKEY, and the client names it.
        var zones = DnsZone.FromOptions(new EdgeDnsOptions { Zones = [new DnsZoneOptions { Name = named.Zone, Server = named.Server, KeyName = "unknown-key", KeySecret = named.Secret, Target = Target }] }, []);
        var badKey = await new DnsUpdateClient("test", 60, TimeSpan.FromSeconds(5), TimeProvider.System).AddTxtAsync(Assert.Single(zones), "probe.example.test", "x", CancellationToken.None);
        Assert.False(badKey.Succeeded);
        Assert.Equal("badkey", badKey.Reason);
        Assert.Contains("unknown-key", badKey.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Leaves_a_record_it_did_not_create_alone()
    {
        await using var named = await NamedProcess.StartAsync(records: ["taken 60 IN CNAME elsewhere.example.org.", "busy 60 IN A 192.0.2.99"]);
        using var dump = new WriteOnDispose(output, () => named.Log);
        await using var harness = await TunnelHarness.StartAsync(o => UseZone(o, named));
        await harness.StartOriginAsync(["taken.example.test", "busy.example.test"]);

        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Count(e => e.EventId.Name == "DnsRecordForeign") >= 2, RecordTimeout, "the edge says both names hold records it did not create");
        Assert.Equal(["elsewhere.example.org."], await named.DigAsync("taken.example.test", "CNAME"));
        Assert.Equal(["192.0.2.99"], await named.DigAsync("busy.example.test", "A"));
        Assert.Empty(await named.DigAsync("busy.example.test", "CNAME"));
        Assert.Equal(0, named.CountInLog("adding an RR at 'taken.example.test'") + named.CountInLog("adding an RR at 'busy.example.test'"));
        Assert.Equal(0, named.CountInLog("deleting"));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics");
        Assert.True(EdgeCluster.Series(metrics, UpdatesMetric, ("operation", "publish"), ("reason", "foreign_record"), ("result", "failure")) >= 2, metrics);
    }

    [Fact]
    public async Task Removes_the_record_after_the_grace_period_once_no_connector_serves_the_name()
    {
        var grace = TimeSpan.FromSeconds(2);
        await using var named = await NamedProcess.StartAsync();
        using var dump = new WriteOnDispose(output, () => named.Log);
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            UseZone(o, named);
            o.Dns.RemoveAfter = grace;
        });
        var origin = await harness.StartOriginAsync([App]);
        await UntilRecordAsync(named, App, "CNAME", [Target + "."]);

        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await origin.App.StopAsync(stop.Token);
        }

        await Wait.UntilAsync(() => harness.Edge.Routes.Hostnames().Count == 0, TimeSpan.FromSeconds(10), "the route is gone");
        var gone = DateTime.UtcNow;
        await UntilRecordAsync(named, App, "CNAME", []);
        Assert.Empty(await named.DigAsync("_tunnel-owner." + App, "TXT"));
        var removed = Assert.Single(harness.EdgeLogs.Entries, e => e.EventId.Name == "DnsRecordRemoved");
        Assert.True(removed.At - gone >= grace - TimeSpan.FromMilliseconds(100), $"removed {(removed.At - gone).TotalSeconds:0.00} s after the route went, before the grace of {grace.TotalSeconds} s");
    }

    [Fact]
    public async Task Named_down_leaves_the_tunnel_serving_and_the_edge_says_why_then_publishes_when_it_is_back()
    {
        await using var named = await NamedProcess.StartAsync();
        using var dump = new WriteOnDispose(output, () => named.Log);
        await named.StopAsync();
        await using var harness = await TunnelHarness.StartAsync(o => UseZone(o, named));
        await harness.StartOriginAsync([App]);

        using var visitor = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{harness.VisitorPort}/"))
        {
            request.Headers.Host = App;
            using var response = await visitor.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await Wait.UntilAsync(() => harness.EdgeLogs.Entries.Any(e => e.EventId.Name == "DnsServerUnreachable"), RecordTimeout, "the edge says named is unreachable");
        var unreachable = harness.EdgeLogs.Entries.First(e => e.EventId.Name == "DnsServerUnreachable");
        output.WriteLine(unreachable.Message);
        Assert.Contains(named.Server, unreachable.Message, StringComparison.Ordinal);
        var metrics = await visitor.GetStringAsync($"http://127.0.0.1:{harness.Edge.AdminEndPoint!.Port}/metrics");
        Assert.True(EdgeCluster.Series(metrics, UpdatesMetric, ("reason", "unreachable"), ("result", "failure")) >= 1, metrics);

        await named.StartAgainAsync();
        await UntilRecordAsync(named, App, "CNAME", [Target + "."]);
    }

    [Fact]
    public async Task Only_one_edge_of_a_cluster_writes_a_name_both_serve()
    {
        await using var named = await NamedProcess.StartAsync();
        await using var cluster = await EdgeCluster.StartAsync();
        using var dump = new WriteOnDispose(output, () => cluster.Output + "\n[named]\n" + named.Log);
        var config = Path.Combine(cluster.Pki.Directory, "dns.json");
        await File.WriteAllTextAsync(config, $$"""
            { "Edge": { "Dns": { "FirstRetryDelay": "00:00:00.2", "MaxRetryDelay": "00:00:01", "Zones": [ {
                "Name": "example.test", "Server": "{{named.Server}}", "KeyName": "{{named.KeyName}}", "KeySecretPath": "{{named.KeyFilePath}}",
                "Target": "{{Target}}", "Patterns": [ "*.example.test" ] } ] } } }
            """);
        var a = await cluster.StartEdgeAsync("edge-a", "r1", configPath: config);
        var b = await cluster.StartEdgeAsync("edge-b", "r2", configPath: config);
        await cluster.StartOriginAsync(App, [a, b]);

        await UntilRecordAsync(named, App, "CNAME", [Target + "."]);

        // Both edges hold the name: one writes, the other sees the lock and leaves it.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string[] pages = [];
        await EdgeCluster.UntilAsync(async () =>
        {
            pages = [await http.GetStringAsync($"http://127.0.0.1:{a.AdminPort}/"), await http.GetStringAsync($"http://127.0.0.1:{b.AdminPort}/")];
            return pages.Count(p => p.Contains("<td>published</td>", StringComparison.Ordinal)) == 1 && pages.Count(p => p.Contains("<td>peer</td>", StringComparison.Ordinal)) == 1;
        }, RecordTimeout, "one edge shows the record published and the other shows it written by its peer");

        Assert.Equal(1, named.CountInLog($"adding an RR at '{App}' CNAME"));
        var published = 0.0;
        foreach (var edge in new[] { a, b })
        {
            published += EdgeCluster.Series(await EdgeCluster.MetricsAsync(edge), UpdatesMetric, ("operation", "publish"), ("reason", "published")) ?? 0;
        }

        Assert.Equal(1, published);
        Assert.Equal(1, named.CountInLog("updating zone 'example.test/IN': adding an RR at '_tunnel-owner." + App + "'"));

        // The writer stops: its lock goes with its lease, and the other edge takes the name over, finding
        // the cluster's records there (nothing is written again).
        var (writer, other) = pages[0].Contains("<td>published</td>", StringComparison.Ordinal) ? (a, b) : (b, a);
        await writer.TerminateAsync();
        await EdgeCluster.UntilAsync(async () => (await http.GetStringAsync($"http://127.0.0.1:{other.AdminPort}/")).Contains("<td>published</td>", StringComparison.Ordinal),
            RecordTimeout, "the remaining edge writes the name");
        Assert.Equal(1, EdgeCluster.Series(await EdgeCluster.MetricsAsync(other), UpdatesMetric, ("operation", "publish"), ("reason", "present")));
        Assert.Equal(1, named.CountInLog($"adding an RR at '{App}' CNAME"));
        Assert.Equal([Target + "."], await named.DigAsync(App, "CNAME"));
    }

    [Fact]
    public async Task Writes_and_deletes_txt_records_for_acme_challenges_through_the_signed_path()
    {
        await using var named = await NamedProcess.StartAsync();
        using var dump = new WriteOnDispose(output, () => named.Log);
        await using var harness = await TunnelHarness.StartAsync(o => UseZone(o, named));
        var publisher = harness.Edge.Services.GetRequiredService<DnsPublisher>();
        const string Challenge = "_acme-challenge.app.example.test";

        await publisher.SetTxtAsync(Challenge, "first-token", CancellationToken.None);
        await publisher.SetTxtAsync(Challenge, "second-token", CancellationToken.None);
        Assert.Equal(["\"first-token\"", "\"second-token\""], (await named.DigAsync(Challenge, "TXT")).Order(StringComparer.Ordinal));
        Assert.Contains(publisher.Records(), r => r.Name == Challenge && r.Type == "TXT" && r.Value == "first-token" && r.State == "published");

        await publisher.RemoveTxtAsync(Challenge, "first-token", CancellationToken.None);
        Assert.Equal(["\"second-token\""], await named.DigAsync(Challenge, "TXT"));
        Assert.DoesNotContain(publisher.Records(), r => r.Value == "first-token");

        var outside = await Assert.ThrowsAsync<InvalidOperationException>(() => publisher.SetTxtAsync("_acme-challenge.example.org", "x", CancellationToken.None));
        Assert.Contains("example.test", outside.Message, StringComparison.Ordinal);

        await named.StopAsync();
        var down = await Assert.ThrowsAsync<DnsUpdateException>(() => publisher.RemoveTxtAsync(Challenge, "second-token", CancellationToken.None));
        Assert.Equal("unreachable", down.Reason);
        Assert.Contains(named.Server, down.Message, StringComparison.Ordinal);
    }

    /// <summary>Gives the edge <paramref name="named"/>'s zone (its address and TSIG key file), quick retries, then <paramref name="configure"/>.</summary>
    internal static void UseZone(EdgeOptions options, NamedProcess named, Action<DnsZoneOptions>? configure = null)
    {
        var zone = new DnsZoneOptions
        {
            Name = named.Zone,
            Server = named.Server,
            KeyName = named.KeyName,
            KeySecretPath = named.KeyFilePath,
            Target = Target,
            Addresses = ["192.0.2.10", "2001:db8::10"],
            Patterns = ["*.example.test"],
        };
        configure?.Invoke(zone);
        options.Dns.Zones.Add(zone);
        options.Dns.FirstRetryDelay = TimeSpan.FromMilliseconds(200);
        options.Dns.MaxRetryDelay = TimeSpan.FromSeconds(1);
    }

    private static Task UntilRecordAsync(NamedProcess named, string name, string type, string[] expected) =>
        EdgeCluster.UntilAsync(async () => (await named.DigAsync(name, type)).SequenceEqual(expected), RecordTimeout, $"dig {name} {type} shows [{string.Join(", ", expected)}]");
}
