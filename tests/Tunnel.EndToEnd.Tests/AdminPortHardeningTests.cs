using System.Net;
using System.Net.Sockets;
using System.Text;
using Tunnel.Edge.Admin;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

/// <summary>The admin port against a browser turned on it (DNS rebinding) and against bodies too big to hold.</summary>
public class AdminPortHardeningTests
{
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task The_status_page_and_metrics_answer_only_the_admin_ports_own_host_names()
    {
        await using var harness = await TunnelHarness.StartAsync(o => o.AdminHosts = ["metrics.internal"]);
        var port = harness.Edge.AdminEndPoint!.Port;

        foreach (var host in new[] { $"127.0.0.1:{port}", $"localhost:{port}", "edge.localhost", "[::1]", "metrics.internal", $"METRICS.internal.:{port}" })
        {
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(port, "/metrics", host)).Status);
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(port, "/", host)).Status);
        }

        // What a page of attacker.example sees after its name re-resolves to 127.0.0.1.
        foreach (var path in new[] { "/", "/metrics" })
        {
            var (status, body) = await GetAsync(port, path, $"attacker.example:{port}");
            Assert.Equal(HttpStatusCode.MisdirectedRequest, status);
            Assert.True(body.Length < 200, body);
            Assert.DoesNotContain("tunnel_edge", body, StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.MisdirectedRequest, (await GetAsync(port, "/", "10.9.9.9")).Status);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "AdminRequestRefused" && e.Message.Contains("(421)", StringComparison.Ordinal) && e.Message.Contains("attacker.example", StringComparison.Ordinal));
        var metrics = (await GetAsync(port, "/metrics", "localhost")).Body;
        Assert.Contains("tunnel_edge_admin_refused_total{reason=\"host_not_allowed\"} 3", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revocation_declaring_a_huge_body_is_refused_413_before_the_body_is_read()
    {
        var token = "test-token-" + Guid.NewGuid().ToString("N");
        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            var directory = Path.GetDirectoryName(o.CaCertificatePath)!;
            o.AdminTokenPath = Path.Combine(directory, "admin.token");
            TestPki.WriteSecret(o.AdminTokenPath, token + "\n");
            o.RevocationListPath = Path.Combine(directory, "revoked.json");
        });
        var port = harness.Edge.AdminEndPoint!.Port;

        // 100 MB announced, none sent: an edge that reads before it checks never answers.
        var answer = await RawRequestAsync(port, $"POST /api/v1/credentials/ABCD/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 413", answer, StringComparison.Ordinal);

        // Without a length (chunked), no more than the limit is read.
        var chunk = new string('x', AdminApi.MaxRequestBodyBytes + 100);
        var chunked = await RawRequestAsync(port, $"POST /api/v1/credentials/ABCD/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n{chunk.Length:x}\r\n{chunk}\r\n");
        Assert.StartsWith("HTTP/1.1 413", chunked, StringComparison.Ordinal);

        // Under the limit the revocation goes through, with its reason.
        var reason = "{\"reason\": \"" + new string('r', 3000) + "\"}";
        var accepted = await RawRequestAsync(port, $"POST /api/v1/credentials/ABCD/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {reason.Length}\r\n\r\n{reason}");
        Assert.StartsWith("HTTP/1.1 200", accepted, StringComparison.Ordinal);

        var metrics = (await GetAsync(port, "/metrics", "localhost")).Body;
        Assert.Contains("tunnel_edge_admin_refused_total{reason=\"body_too_large\"} 2", metrics, StringComparison.Ordinal);
        Assert.Contains(harness.EdgeLogs.Entries, e => e.EventId.Name == "AdminRequestRefused" && e.Message.Contains("(413)", StringComparison.Ordinal));
    }

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(int port, string path, string host)
    {
        using var client = new HttpClient { Timeout = AnswerTimeout };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}{path}");
        request.Headers.Host = host;
        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Sends raw request bytes and reads the status line and headers, within <see cref="AnswerTimeout"/>.</summary>
    private static async Task<string> RawRequestAsync(int port, string request)
    {
        using var timeout = new CancellationTokenSource(AnswerTimeout);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, timeout.Token);
        var buffer = new byte[8192];
        var received = 0;
        while (received < buffer.Length)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(received), SocketFlags.None, timeout.Token);
            if (read == 0)
            {
                break;
            }

            received += read;
            if (Encoding.ASCII.GetString(buffer, 0, received).Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                break;
            }
        }

        return Encoding.ASCII.GetString(buffer, 0, received);
    }
}
