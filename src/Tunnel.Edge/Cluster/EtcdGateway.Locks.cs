using System.Globalization;

namespace Tunnel.Edge.Cluster;

/// <summary>The one transaction a lock needs: write a key only when it does not exist, else read who holds it.</summary>
internal sealed partial class EtcdGateway
{
    /// <summary>
    /// Writes <paramref name="key"/> = <paramref name="value"/> under <paramref name="leaseId"/> when the key
    /// does not exist (etcd's create revision 0), in one transaction; returns the key's value after it:
    /// <paramref name="value"/> when it was written (or was already), the holder's value otherwise.
    /// </summary>
    public async Task<string> PutIfAbsentAsync(string key, string value, long leaseId, CancellationToken cancellationToken)
    {
        using var reply = await CallAsync("/v3/kv/txn", w =>
        {
            w.WriteStartArray("compare");
            w.WriteStartObject();
            w.WriteString("key", Base64(key));
            w.WriteString("target", "CREATE");
            w.WriteString("result", "EQUAL");
            w.WriteString("create_revision", "0");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteStartArray("success");
            w.WriteStartObject();
            w.WriteStartObject("request_put");
            w.WriteString("key", Base64(key));
            w.WriteString("value", Base64(value));
            w.WriteString("lease", leaseId.ToString(CultureInfo.InvariantCulture));
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteStartArray("failure");
            w.WriteStartObject();
            w.WriteStartObject("request_range");
            w.WriteString("key", Base64(key));
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
        }, cancellationToken).ConfigureAwait(false);
        var root = reply.RootElement;
        if (root.TryGetProperty("succeeded", out var succeeded) && succeeded.ValueKind == System.Text.Json.JsonValueKind.True)
        {
            return value;
        }

        // The range of the failure branch: the key's current value (empty when it vanished in between).
        if (root.TryGetProperty("responses", out var responses))
        {
            foreach (var response in responses.EnumerateArray())
            {
                if (response.TryGetProperty("response_range", out var range) && range.TryGetProperty("kvs", out var kvs))
                {
                    foreach (var kv in kvs.EnumerateArray())
                    {
                        return Unbase64(kv, "value");
                    }
                }
            }
        }

        return "";
    }
}
