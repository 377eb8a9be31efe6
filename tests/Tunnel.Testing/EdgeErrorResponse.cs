using System.Text.Json;

namespace Tunnel.Testing;

/// <summary>A response read from <c>curl -i</c> output: status, headers and body.</summary>
public sealed record EdgeErrorResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body)
{
    /// <summary>Parses curl's <c>-i</c> output, skipping interim (1xx) responses.</summary>
    public static EdgeErrorResponse Parse(string curlOutput)
    {
        var rest = curlOutput;
        while (true)
        {
            var end = rest.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            Assert.True(end > 0, $"no response head in: {curlOutput}");
            var head = rest[..end].Split("\r\n");
            rest = rest[(end + 4)..];
            var status = int.Parse(head[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            if (status >= 200)
            {
                var headers = head.Skip(1)
                    .Select(line => line.Split(':', 2))
                    .GroupBy(parts => parts[0].Trim(), StringComparer.OrdinalIgnoreCase)
                    .ToDictionary(group => group.Key, group => group.Last()[1].Trim(), StringComparer.OrdinalIgnoreCase);
                return new EdgeErrorResponse(status, headers, rest);
            }
        }
    }

    /// <summary>
    /// Checks that this is the edge's JSON error for <paramref name="status"/>, naming <paramref name="host"/>,
    /// and that its request id appears in the edge's log; returns the id.
    /// </summary>
    public string AssertEdgeError(int status, string host, LogCapture edgeLogs)
    {
        Assert.True(Status == status, $"expected {status}, got {Status}: {Body}");
        using var json = JsonDocument.Parse(Body);
        var root = json.RootElement;
        Assert.Equal(status, root.GetProperty("status").GetInt32());
        Assert.Equal(host, root.GetProperty("host").GetString());
        var requestId = root.GetProperty("requestId").GetString()!;
        Assert.False(string.IsNullOrEmpty(requestId));
        Assert.Equal(requestId, Headers["X-Tunnel-Request-Id"]);
        Assert.Contains(edgeLogs.Entries, e => e.Message.Contains(requestId, StringComparison.Ordinal) && e.Message.Contains(host, StringComparison.Ordinal)
            && e.Message.Contains(status.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        return requestId;
    }
}
