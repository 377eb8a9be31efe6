using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>
/// Sends one question to the configured servers in turn: UDP first, the same question over TCP when
/// the UDP answer is truncated, the next server on a timeout, a network error, a malformed answer or
/// an RCODE other than NOERROR and NXDOMAIN. Bounded: <c>attempts × servers</c> tries, each within
/// the timeout (the TCP retry with its own).
/// </summary>
internal sealed class DnsClient
{
    private readonly IReadOnlyList<IPEndPoint> _servers;
    private readonly string _resolvConfPath;
    private readonly TimeSpan _timeout;
    private readonly int _attempts;
    private readonly TimeProvider _time;

    // The server that answered last is asked first next time, so a dead first server costs one
    // timeout once rather than on every query.
    private int _preferredServer;
    private long _tcpFallbacks;

    public DnsClient(DnsResolverOptions options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options.Validate();
        _servers = options.Servers.ToArray();
        _resolvConfPath = options.ResolvConfPath;
        _timeout = options.Timeout;
        _attempts = options.Attempts;
        _time = timeProvider;
    }

    /// <summary>How many queries were asked again over TCP because their UDP answer was truncated.</summary>
    public long TcpFallbackCount => Interlocked.Read(ref _tcpFallbacks);

    /// <summary>Asks the servers until one answers NOERROR or NXDOMAIN, and returns that answer and its server.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a name we can ask for.</exception>
    /// <exception cref="DnsResolutionException">No server answered usefully; the message lists what each did.</exception>
    public async Task<(DnsResponse Response, IPEndPoint Server)> QueryAsync(string name, DnsRecordType type, CancellationToken cancellationToken)
    {
        // Checks the name once, before any server is asked.
        var description = DnsQuery.Create(name, type, id: 0).ToString();
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
                    var response = await ExchangeAsync(server, DnsQuery.Create(name, type), cancellationToken).ConfigureAwait(false);
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

    private async Task<DnsResponse> ExchangeAsync(IPEndPoint server, DnsQuery query, CancellationToken cancellationToken)
    {
        var response = await TryAsync(server, "UDP", query, ExchangeOverUdpAsync, cancellationToken).ConfigureAwait(false);
        if (response.IsTruncated)
        {
            Interlocked.Increment(ref _tcpFallbacks);
            response = await TryAsync(server, "TCP", query, ExchangeOverTcpAsync, cancellationToken).ConfigureAwait(false);
            if (response.IsTruncated)
            {
                throw new DnsResolutionException("format_error", $"{server} sent a truncated answer even over TCP.");
            }
        }

        var errorType = response.ResponseCode switch
        {
            DnsResponseCode.NoError or DnsResponseCode.NameError => null,
            DnsResponseCode.FormatError => "format_error",
            DnsResponseCode.Refused => "refused",
            DnsResponseCode.NotImplemented => "not_implemented",
            _ => "server_failure",
        };
        if (errorType is not null)
        {
            throw new DnsResolutionException(errorType, $"{server} answered {DnsWire.Describe(response.ResponseCode)}");
        }

        return response;
    }

    /// <summary>Runs one exchange within the per-try timeout and turns its failures into a message naming the server.</summary>
    private async Task<DnsResponse> TryAsync(
        IPEndPoint server,
        string protocol,
        DnsQuery query,
        Func<IPEndPoint, DnsQuery, CancellationToken, Task<DnsResponse>> exchange,
        CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await exchange(server, query, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DnsResolutionException("timeout", $"{server} did not answer over {protocol} within {_timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s");
        }
        catch (DnsFormatException ex)
        {
            throw new DnsResolutionException("format_error", $"{server} sent a malformed answer over {protocol}: {ex.Message}", ex);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            throw new DnsResolutionException("connection_refused", $"{server} refused the query over {protocol} (nothing listens there)", ex);
        }
        catch (SocketException ex)
        {
            throw new DnsResolutionException("network_error", $"{server} could not be asked over {protocol}: {ex.SocketErrorCode}", ex);
        }
        catch (IOException ex)
        {
            throw new DnsResolutionException("network_error", $"{server} could not be asked over {protocol}: {ex.Message}", ex);
        }
    }

    private static async Task<DnsResponse> ExchangeOverUdpAsync(IPEndPoint server, DnsQuery query, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        // A connected UDP socket only receives datagrams from the server, and reports an ICMP
        // "port unreachable" as an error at once instead of a silent timeout.
        await socket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        await socket.SendAsync(query.Message, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(DnsWire.MaxMessageLength);
        try
        {
            for (var ignored = 0; ; ignored++)
            {
                var received = await socket.ReceiveAsync(buffer.AsMemory(0, DnsWire.MaxMessageLength), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (received >= 2 && BinaryPrimitives.ReadUInt16BigEndian(buffer) != query.Id)
                {
                    // A late answer to an earlier query, or a forgery: not ours, keep waiting for ours.
                    if (ignored >= DiscoveryLimits.MaxIgnoredDatagrams)
                    {
                        throw new DnsFormatException($"{DiscoveryLimits.MaxIgnoredDatagrams} datagrams arrived with the wrong id and none with the query's.");
                    }

                    continue;
                }

                return DnsResponse.Parse(buffer.AsSpan(0, received), query);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<DnsResponse> ExchangeOverTcpAsync(IPEndPoint server, DnsQuery query, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        await using var stream = new NetworkStream(socket, ownsSocket: false);

        // RFC 1035 §4.2.2: over TCP every message is preceded by its length in two octets.
        var framed = new byte[2 + query.Message.Length];
        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)query.Message.Length);
        query.Message.CopyTo(framed, 2);
        await stream.WriteAsync(framed, cancellationToken).ConfigureAwait(false);

        var prefix = new byte[2];
        var length = 0;
        try
        {
            await stream.ReadExactlyAsync(prefix, cancellationToken).ConfigureAwait(false);
            length = BinaryPrimitives.ReadUInt16BigEndian(prefix);
            // At most 64 KiB, as the 16-bit prefix allows: the allocation is bounded by the format itself.
            var message = new byte[length];
            await stream.ReadExactlyAsync(message, cancellationToken).ConfigureAwait(false);
            return DnsResponse.Parse(message, query);
        }
        catch (EndOfStreamException ex)
        {
            throw new DnsFormatException($"The server closed the TCP connection before the whole answer ({length} bytes announced) arrived.", ex);
        }
    }
}
