using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The few etcd v3 calls the cluster needs (lease grant and keepalive, put, delete, range, watch),
/// spoken as JSON to etcd's gRPC gateway over <see cref="HttpClient"/>: no etcd or gRPC client
/// library is in our package registry. Keys and values are base64 on the wire and 64-bit numbers
/// are JSON strings, as the gateway writes them. Endpoints are tried in turn; the one that answered
/// last is tried first.
/// </summary>
internal sealed partial class EtcdGateway : IDisposable
{
    private readonly HttpClient _client;
    private readonly Uri[] _endpoints;
    private readonly EtcdLogin? _login;
    private int _current;
    private volatile string? _token;

    /// <summary>A gateway to the cluster's store for calls that must finish within a third of the lease's TTL (at least 1 s).</summary>
    public static EtcdGateway ForCluster(ClusterOptions cluster) =>
        new(cluster.StoreEndpoints, TimeSpan.FromSeconds(Math.Max(1, cluster.LeaseTtl.TotalSeconds / 3)), EtcdTlsOptions.From(cluster), EtcdLogin.From(cluster));

    /// <summary>Creates a client for the given endpoints (<c>http://host:2379</c> or <c>https://host:2379</c>).</summary>
    /// <param name="endpoints">The etcd client URLs of one cluster.</param>
    /// <param name="callTimeout">How long a unary call may take.</param>
    /// <param name="tls">For <c>https</c> endpoints: the CAs to trust and the client certificate; <c>null</c> for the system roots and none.</param>
    /// <param name="login">For an etcd with authentication enabled: the user to log in as; <c>null</c> for none.</param>
    public EtcdGateway(IEnumerable<string> endpoints, TimeSpan callTimeout, EtcdTlsOptions? tls = null, EtcdLogin? login = null)
    {
        _login = login;
        ArgumentNullException.ThrowIfNull(endpoints);
        _endpoints = endpoints.Select(Parse).ToArray();
        if (_endpoints.Length == 0)
        {
            throw new ArgumentException("At least one etcd endpoint is needed.", nameof(endpoints));
        }

        CallTimeout = callTimeout;
        _client = new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = callTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ActivityHeadersPropagator = System.Diagnostics.DistributedContextPropagator.CreateNoOutputPropagator(),
            SslOptions = SslOptions(tls),
        })
        {
            // Per-call timeouts come from the callers' tokens; the watch stream lives as long as it can.
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>How long a unary call may take before it counts as a failure.</summary>
    public TimeSpan CallTimeout { get; }

    /// <summary>Grants a lease; returns its id.</summary>
    public async Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken)
    {
        var seconds = Math.Max(1, (long)Math.Ceiling(ttl.TotalSeconds));
        using var reply = await CallAsync("/v3/lease/grant", w => w.WriteString("TTL", seconds.ToString(CultureInfo.InvariantCulture)), cancellationToken).ConfigureAwait(false);
        return ReadInt64(reply.RootElement, "ID");
    }

    /// <summary>Refreshes a lease once; returns its remaining TTL in seconds, 0 when etcd no longer knows it.</summary>
    public async Task<long> KeepAliveOnceAsync(long leaseId, CancellationToken cancellationToken)
    {
        // The gateway streams keepalive replies for as long as the request body stays open; one
        // request per refresh and the first reply is all a lease with a TTL of seconds needs.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CallTimeout);
        using var request = CreateRequest("/v3/lease/keepalive", w => w.WriteString("ID", leaseId.ToString(CultureInfo.InvariantCulture)));
        using var response = await SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            await foreach (var message in ReadMessagesAsync(stream, timeout.Token).ConfigureAwait(false))
            {
                using (message)
                {
                    var result = Result(message.RootElement);
                    return ReadInt64(result, "TTL");
                }
            }
        }

        throw new EtcdException("etcd ended the keepalive stream without an answer.");
    }

    /// <summary>Revokes a lease: every key under it is deleted at once.</summary>
    public async Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken)
    {
        using var reply = await CallAsync("/v3/lease/revoke", w => w.WriteString("ID", leaseId.ToString(CultureInfo.InvariantCulture)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a key, under a lease when <paramref name="leaseId"/> is not 0.</summary>
    public async Task PutAsync(string key, string value, long leaseId, CancellationToken cancellationToken)
    {
        using var reply = await CallAsync("/v3/kv/put", w =>
        {
            w.WriteString("key", Base64(key));
            w.WriteString("value", Base64(value));
            if (leaseId != 0)
            {
                w.WriteString("lease", leaseId.ToString(CultureInfo.InvariantCulture));
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes one key.</summary>
    public async Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        using var reply = await CallAsync("/v3/kv/deleterange", w => w.WriteString("key", Base64(key)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every key under a prefix, with the store's revision at the time of the read.</summary>
    public async Task<(long Revision, IReadOnlyList<KeyValuePair<string, string>> Pairs)> RangePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        using var reply = await CallAsync("/v3/kv/range", w =>
        {
            w.WriteString("key", Base64(prefix));
            w.WriteString("range_end", Base64(PrefixEnd(prefix)));
        }, cancellationToken).ConfigureAwait(false);
        var root = reply.RootElement;
        var revision = ReadInt64(root.GetProperty("header"), "revision");
        var pairs = new List<KeyValuePair<string, string>>();
        if (root.TryGetProperty("kvs", out var kvs))
        {
            foreach (var kv in kvs.EnumerateArray())
            {
                pairs.Add(new(Unbase64(kv, "key"), Unbase64(kv, "value")));
            }
        }

        return (revision, pairs);
    }

    /// <summary>
    /// Watches a prefix from <paramref name="startRevision"/> and yields each batch of changes until the
    /// stream breaks (an exception) or <paramref name="cancellationToken"/> fires. A batch's
    /// <see cref="EtcdWatchBatch.Revision"/> is the store's revision after it.
    /// </summary>
    public async IAsyncEnumerable<EtcdWatchBatch> WatchPrefixAsync(string prefix, long startRevision, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var request = CreateRequest("/v3/watch", w =>
        {
            w.WriteStartObject("create_request");
            w.WriteString("key", Base64(prefix));
            w.WriteString("range_end", Base64(PrefixEnd(prefix)));
            w.WriteString("start_revision", startRevision.ToString(CultureInfo.InvariantCulture));
            w.WriteEndObject();
        });
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connect.CancelAfter(CallTimeout);
        using var response = await SendAsync(request, HttpCompletionOption.ResponseHeadersRead, connect.Token).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            await foreach (var message in ReadMessagesAsync(stream, cancellationToken).ConfigureAwait(false))
            {
                using (message)
                {
                    var result = Result(message.RootElement);
                    if (result.TryGetProperty("canceled", out var canceled) && canceled.ValueKind == JsonValueKind.True)
                    {
                        // A compacted start revision, or the server shutting the watch: the caller re-reads.
                        var reason = result.TryGetProperty("cancel_reason", out var why) ? why.GetString() : null;
                        throw new EtcdException($"etcd canceled the watch{(string.IsNullOrEmpty(reason) ? "" : ": " + reason)}.");
                    }

                    var revision = result.TryGetProperty("header", out var header) ? ReadInt64(header, "revision") : 0;
                    var changes = new List<EtcdChange>();
                    if (result.TryGetProperty("events", out var events))
                    {
                        foreach (var change in events.EnumerateArray())
                        {
                            var deleted = change.TryGetProperty("type", out var type) && type.GetString() == "DELETE";
                            var kv = change.GetProperty("kv");
                            changes.Add(new EtcdChange(Unbase64(kv, "key"), deleted ? null : Unbase64(kv, "value")));
                        }
                    }

                    yield return new EtcdWatchBatch(revision, changes);
                }
            }
        }

        throw new EtcdException("etcd ended the watch stream.");
    }

    /// <inheritdoc />
    public void Dispose() => _client.Dispose();

    private async Task<JsonDocument> CallAsync(string path, Action<Utf8JsonWriter> writeBody, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CallTimeout);
        using var request = CreateRequest(path, writeBody);
        using var response = await SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(timeout.Token).ConfigureAwait(false);
        var document = Parse(body);
        Result(document.RootElement);
        return document;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage template, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        var body = await template.Content!.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        Exception? last = null;
        var first = Volatile.Read(ref _current);
        for (var i = 0; i < _endpoints.Length; i++)
        {
            var index = (first + i) % _endpoints.Length;
            try
            {
                var response = await SendOnceAsync(_endpoints[index], template.RequestUri!, body, completion, cancellationToken).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.Unauthorized && _login is not null)
                {
                    // The token expired, or etcd restarted and forgot it: log in again, once.
                    response.Dispose();
                    _token = null;
                    response = await SendOnceAsync(_endpoints[index], template.RequestUri!, body, completion, cancellationToken).ConfigureAwait(false);
                }

                if (response.StatusCode != HttpStatusCode.OK)
                {
                    // The gateway answers errors with a JSON body naming them; keep its message.
                    var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                    response.Dispose();
                    throw new EtcdException($"etcd at {_endpoints[index]} answered {(int)response.StatusCode}: {ErrorMessage(text)}");
                }

                Volatile.Write(ref _current, index);
                return response;
            }
            catch (HttpRequestException ex)
            {
                last = ex;
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                last = ex;
            }
        }

        throw new EtcdException($"No etcd endpoint answered ({string.Join(", ", _endpoints.Select(e => e.Authority))}): {Describe(last)}", last);
    }

    private async Task<HttpResponseMessage> SendOnceAsync(Uri endpoint, Uri path, byte[] body, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, path)) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new("application/json");
        if (_login is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", _token ?? await LogInAsync(endpoint, cancellationToken).ConfigureAwait(false));
        }

        return await _client.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gets a token for <see cref="_login"/> (etcd's <c>Authenticate</c>); kept until etcd refuses it.</summary>
    private async Task<string> LogInAsync(Uri endpoint, CancellationToken cancellationToken)
    {
        var login = _login!;
        using var request = CreateRequest("/v3/auth/authenticate", w =>
        {
            w.WriteString("name", login.User);
            w.WriteString("password", login.Password);
        });
        request.RequestUri = new Uri(endpoint, request.RequestUri!);
        request.Content!.Headers.ContentType = new("application/json");
        using var response = await _client.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new EtcdException($"etcd at {endpoint} refused the login of user '{login.User}' ({(int)response.StatusCode}): {ErrorMessage(text)}");
        }

        using var reply = Parse(Encoding.UTF8.GetBytes(text));
        var token = reply.RootElement.TryGetProperty("token", out var value) ? value.GetString() : null;
        if (string.IsNullOrEmpty(token))
        {
            throw new EtcdException($"etcd at {endpoint} accepted the login of user '{login.User}' but sent no token: is authentication enabled on it?");
        }

        _token = token;
        return token;
    }

    private static HttpRequestMessage CreateRequest(string path, Action<Utf8JsonWriter> writeBody)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writeBody(writer);
            writer.WriteEndObject();
        }

        return new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative)) { Content = new ByteArrayContent(buffer.WrittenSpan.ToArray()) };
    }

    /// <summary>Reads the gateway's stream: JSON objects one after another (newline separated).</summary>
    private static async IAsyncEnumerable<JsonDocument> ReadMessagesAsync(Stream stream, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length > 0)
            {
                yield return Parse(Encoding.UTF8.GetBytes(line));
            }
        }
    }

    private static JsonDocument Parse(byte[] body)
    {
        try
        {
            return JsonDocument.Parse(body);
        }
        catch (JsonException ex)
        {
            throw new EtcdException($"etcd sent something that is not JSON: {ex.Message}", ex);
        }
    }

    /// <summary>The streamed calls wrap each reply in <c>result</c>; errors come as <c>error</c>.</summary>
    private JsonElement Result(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new EtcdException("etcd sent a reply that is not a JSON object.");
        }

        if (root.TryGetProperty("error", out var error))
        {
            var message = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) ? m.GetString() : error.ToString();
            if (message?.Contains("auth token", StringComparison.Ordinal) == true)
            {
                // A streamed call (watch, keepalive) answers an expired token inside the stream.
                _token = null;
            }

            throw new EtcdException($"etcd: {message}");
        }

        return root.TryGetProperty("result", out var result) ? result : root;
    }

    private static string ErrorMessage(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("message", out var message))
            {
                return message.GetString() ?? body;
            }
        }
        catch (JsonException)
        {
        }

        return body.Length > 200 ? body[..200] : body;
    }

    private static long ReadInt64(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value))
        {
            // The gateway leaves zero values out.
            return 0;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Number => value.GetInt64(),
            JsonValueKind.String when long.TryParse(value.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) => parsed,
            _ => throw new EtcdException($"etcd sent '{value}' for {name}, not a number."),
        };
    }

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string Unbase64(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.GetString() is not { } text)
        {
            return "";
        }

        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(text));
        }
        catch (FormatException ex)
        {
            throw new EtcdException($"etcd sent a {name} that is not base64.", ex);
        }
    }

    /// <summary>The range end that covers every key starting with <paramref name="prefix"/>.</summary>
    private static string PrefixEnd(string prefix)
    {
        var bytes = Encoding.UTF8.GetBytes(prefix);
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xFF)
            {
                bytes[i]++;
                return Encoding.UTF8.GetString(bytes, 0, i + 1);
            }
        }

        return "\0";
    }

    private static SslClientAuthenticationOptions SslOptions(EtcdTlsOptions? tls)
    {
        var options = new SslClientAuthenticationOptions();
        if (tls?.ClientCertificate is { } certificate)
        {
            options.ClientCertificates = [certificate];
        }

        if (tls?.TrustedCas is { Count: > 0 } cas)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(cas);
            options.CertificateChainPolicy = policy;
        }

        return options;
    }

    // "The SSL connection could not be established, see inner exception." says nothing by itself:
    // name each distinct cause down the chain.
    private static string Describe(Exception? error)
    {
        var messages = new List<string>();
        for (var e = error; e is not null; e = e.InnerException)
        {
            if (!messages.Contains(e.Message))
            {
                messages.Add(e.Message);
            }
        }

        return messages.Count == 0 ? "no answer" : string.Join(" ", messages.Select(m => m.EndsWith('.') ? m : m + "."));
    }

    private static Uri Parse(string endpoint)
    {
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"'{endpoint}' is not an etcd client URL such as http://127.0.0.1:2379.", nameof(endpoint));
        }

        return new Uri(uri.GetLeftPart(UriPartial.Authority) + "/");
    }
}
