using System.Globalization;
using System.Net;
using System.Net.Sockets;
using DnsClient;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>
/// Sends one question to the configured servers in turn through DnsClient's <see cref="LookupClient"/>
/// (the message codec, UDP, and the same question over TCP when the UDP answer is truncated):
/// the next server on a timeout, a network error, a malformed answer or an RCODE other than NOERROR and
/// NXDOMAIN. Bounded: <c>attempts × servers</c> tries, each within the timeout. DnsClient's cache is off,
/// so the records' TTLs reach <see cref="SrvEdgeDiscovery"/>, which keeps its own.
/// </summary>
internal sealed class DnsServerRotation
{
    // RFC 1035's UDP limit: DnsClient then sends no EDNS0 OPT record, so a big answer comes back truncated
    // and is fetched over TCP instead of as a large datagram that fragments (and is dropped on some paths).
    private const int UdpPayloadSize = 512;

    private readonly IReadOnlyList<IPEndPoint> _servers;
    private readonly string _resolvConfPath;
    private readonly TimeSpan _timeout;
    private readonly int _attempts;
    private readonly TimeProvider _time;
    private readonly LookupClient _client;
    private readonly DnsQueryOptions _queryOptions;

    // The server that answered last is asked first next time, so a dead first server costs one
    // timeout once rather than on every query.
    private int _preferredServer;

    public DnsServerRotation(DnsResolverOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options.Validate();
        _servers = options.Servers.ToArray();
        _resolvConfPath = options.ResolvConfPath;
        _timeout = options.Timeout;
        _attempts = options.Attempts;
        _time = timeProvider;
        _queryOptions = new DnsQueryOptions
        {
            UseCache = false,
            Recursion = true,
            Retries = 0,
            Timeout = _timeout,
            UseTcpFallback = true,
            ThrowDnsErrors = false,
            ContinueOnDnsError = false,
            ContinueOnEmptyResponse = false,
            UseRandomNameServer = false,
            ExtendedDnsBufferSize = UdpPayloadSize,
        };

        // The servers are chosen per query (options or resolv.conf, read each time); this one is never asked.
        _client = new LookupClient(new LookupClientOptions(IPAddress.Loopback) { AutoResolveNameServers = false, UseCache = false });
    }

    /// <summary>Asks the servers until one answers NOERROR or NXDOMAIN, and returns that answer and its server.</summary>
    /// <exception cref="DnsResolutionException">No server answered usefully; the message lists what each did.</exception>
    public async Task<(IDnsQueryResponse Response, IPEndPoint Server)> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        var description = $"{name} {type}";
        var servers = _servers.Count > 0 ? _servers : ResolvConf.ReadServers(_resolvConfPath);
        var failures = new List<DnsResolutionException>();
        var first = (int)((uint)Volatile.Read(ref _preferredServer) % (uint)servers.Count);
        for (var attempt = 0; attempt < _attempts; attempt++)
        {
            for (var i = 0; i < servers.Count; i++)
            {
                var index = (first + i) % servers.Count;
                var server = servers[index];
                try
                {
                    var response = await ExchangeAsync(server, new DnsQuestion(name, type), cancellationToken).ConfigureAwait(false);
                    Volatile.Write(ref _preferredServer, index);
                    return (response, server);
                }
                catch (DnsResolutionException ex)
                {
                    failures.Add(ex);
                }
            }
        }

        var last = failures[^1];
        throw new DnsResolutionException(
            last.ErrorType,
            $"The DNS query for {description} failed on every server ({_attempts} round(s)): {string.Join("; ", failures.Select(f => f.Message))}",
            last);
    }

    private async Task<IDnsQueryResponse> ExchangeAsync(IPEndPoint server, DnsQuestion question, CancellationToken cancellationToken)
    {
        var response = await TryAsync(server, question, cancellationToken).ConfigureAwait(false);
        var code = (DnsResponseCode)response.Header.ResponseCode;
        var errorType = code switch
        {
            DnsResponseCode.NoError or DnsResponseCode.NotExistentDomain => null,
            DnsResponseCode.FormatError => "format_error",
            DnsResponseCode.Refused => "refused",
            DnsResponseCode.NotImplemented => "not_implemented",
            _ => "server_failure",
        };
        if (errorType is not null)
        {
            throw new DnsResolutionException(errorType, $"{server} answered {Describe(code)}");
        }

        if (response.Header.ResultTruncated)
        {
            throw new DnsResolutionException("format_error", $"{server} sent a truncated answer even over TCP.");
        }

        return response;
    }

    /// <summary>Runs one exchange within the per-try timeout and turns its failures into a message naming the server.</summary>
    private async Task<IDnsQueryResponse> TryAsync(IPEndPoint server, DnsQuestion question, CancellationToken cancellationToken)
    {
        // DnsClient bounds each exchange by the same timeout; this one also follows the injected clock.
        using var timeout = new CancellationTokenSource(_timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await _client.QueryServerAsync([new NameServer(server)], question, _queryOptions, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw TimedOut(server);
        }
        catch (DnsResponseException ex) when (ex.Code == DnsResponseCode.ConnectionTimeout || Find<OperationCanceledException>(ex) is not null || Find<TimeoutException>(ex) is not null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw TimedOut(server);
        }
        catch (DnsResponseException ex) when (Find<SocketException>(ex) is { SocketErrorCode: SocketError.ConnectionRefused } refused)
        {
            throw new DnsResolutionException("connection_refused", $"{server} refused the query (nothing listens there)", refused);
        }
        catch (DnsResponseException ex) when (Find<SocketException>(ex) is { } socket)
        {
            throw new DnsResolutionException("network_error", $"{server} could not be asked: {socket.SocketErrorCode}", socket);
        }
        catch (DnsResponseException ex)
        {
            // DnsClient's own word for what went wrong: a malformed answer or a broken exchange.
            throw new DnsResolutionException("format_error", $"{server} gave no usable answer: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not DnsResolutionException)
        {
            // A malformed answer can fail DnsClient's parser in its own ways (DnsResponseParseException,
            // index errors): whatever a server sends, discovery sees a resolution error naming the server.
            throw new DnsResolutionException("format_error", $"{server} sent an answer that cannot be read: {ex.Message}", ex);
        }
    }

    private DnsResolutionException TimedOut(IPEndPoint server) =>
        new("timeout", $"{server} did not answer within {_timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s");

    private static T? Find<T>(Exception ex)
        where T : Exception
    {
        for (Exception? current = ex; current is not null; current = current.InnerException)
        {
            if (current is T found)
            {
                return found;
            }
        }

        return null;
    }

    /// <summary>RCODE names as RFC 1035 and dig write them.</summary>
    private static string Describe(DnsResponseCode code) => code switch
    {
        DnsResponseCode.FormatError => "FORMERR",
        DnsResponseCode.ServerFailure => "SERVFAIL",
        DnsResponseCode.NotExistentDomain => "NXDOMAIN",
        DnsResponseCode.NotImplemented => "NOTIMP",
        DnsResponseCode.Refused => "REFUSED",
        _ => $"RCODE {(int)code}",
    };
}
