using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using Tunnel.Edge.Dial.Discovery.Dns;

namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Looks up SRV records with DnsClient: UDP, then TCP when the answer is truncated, over the
/// servers of <see cref="DnsResolverOptions"/> in turn, DnsClient's cache off so the TTLs stay ours. Target addresses come from
/// the answer's additional section; targets without any there are looked up with separate A and AAAA
/// queries to the same servers. Thread-safe.
/// </summary>
internal sealed class DnsSrvResolver : ISrvResolver
{
    private readonly DnsServerRotation _client;

    /// <summary>Creates a resolver; checks the options once here.</summary>
    /// <param name="options">Servers and timeouts; the system's resolv.conf and the defaults when <c>null</c>.</param>
    /// <param name="timeProvider">The clock for timeouts; the system clock by default.</param>
    /// <exception cref="ArgumentException">The options are out of range.</exception>
    public DnsSrvResolver(DnsResolverOptions? options = null, TimeProvider? timeProvider = null)
    {
        _client = new DnsServerRotation(options ?? new DnsResolverOptions(), timeProvider ?? TimeProvider.System);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a DNS name of ASCII letters, digits, '-' and '_'.</exception>
    public async Task<SrvLookupResult> ResolveSrvAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!DnsName.TryNormalizeQueryName(name, out var normalized, out var error))
        {
            throw new ArgumentException(error, nameof(name));
        }

        var (response, server) = await _client.QueryAsync(normalized, QueryType.SRV, cancellationToken).ConfigureAwait(false);
        if ((DnsResponseCode)response.Header.ResponseCode == DnsResponseCode.NotExistentDomain)
        {
            throw new DnsResolutionException("name_not_found", $"The SRV name '{normalized}' does not exist (NXDOMAIN from {server}).");
        }

        var owners = FollowAliases(normalized, response.Answers);
        var records = response.Answers.SrvRecords().Where(record => owners.Contains(NameOf(record.DomainName))).ToArray();
        if (records.Length == 0)
        {
            return new SrvLookupResult([], TimeSpan.Zero);
        }

        var ttl = TimeSpan.FromSeconds(records.Min(record => record.TimeToLive));

        // RFC 2782: a lone target "." says the service is decidedly not available here.
        var usable = records.Where(record => NameOf(record.Target) != DnsName.Root).ToArray();
        var known = response.Additionals.Concat(response.Answers)
            .OfType<AddressRecord>()
            .GroupBy(record => NameOf(record.DomainName), StringComparer.OrdinalIgnoreCase)
            .ToDictionary(group => group.Key, group => IPv4First(group.Select(record => record.Address)), StringComparer.OrdinalIgnoreCase);

        var missing = usable
            .Where(record => !known.ContainsKey(NameOf(record.Target)))
            .OrderBy(record => record.Priority)
            .Select(record => NameOf(record.Target))
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .Take(DiscoveryLimits.MaxAddressLookups)
            .ToArray();
        if (missing.Length > 0)
        {
            var found = new ConcurrentDictionary<string, IReadOnlyList<IPAddress>>(StringComparer.OrdinalIgnoreCase);
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = DiscoveryLimits.AddressLookupParallelism, CancellationToken = cancellationToken };
            await Parallel.ForEachAsync(missing, parallel, async (host, token) =>
            {
                found[host] = await LookUpAddressesAsync(host, token).ConfigureAwait(false);
            }).ConfigureAwait(false);
            foreach (var (host, addresses) in found)
            {
                known[host] = addresses;
            }
        }

        var targets = usable
            .Select(record => new SrvTarget(
                NameOf(record.Target),
                record.Port,
                record.Priority,
                record.Weight,
                known.TryGetValue(NameOf(record.Target), out var addresses) ? addresses : []))
            .ToArray();
        return new SrvLookupResult(targets, ttl);
    }

    /// <summary>
    /// A and AAAA of one target. A failed or empty lookup gives no addresses rather than an
    /// error: the dialer then resolves the host name itself, and the other targets still count.
    /// </summary>
    private async Task<IReadOnlyList<IPAddress>> LookUpAddressesAsync(string host, CancellationToken cancellationToken)
    {
        var v4 = LookUpAsync(host, QueryType.A, AddressFamily.InterNetwork, cancellationToken);
        var v6 = LookUpAsync(host, QueryType.AAAA, AddressFamily.InterNetworkV6, cancellationToken);
        await Task.WhenAll(v4, v6).ConfigureAwait(false);
        return IPv4First((await v4.ConfigureAwait(false)).Concat(await v6.ConfigureAwait(false)));
    }

    /// <summary>
    /// IPv4 before IPv6, each in the server's order. The dialer tries the addresses one after another
    /// within one connect timeout, and a host without a working IPv6 route would spend it all on
    /// IPv6 first; the order also no longer depends on how the server happened to sort its records.
    /// </summary>
    private static IReadOnlyList<IPAddress> IPv4First(IEnumerable<IPAddress> addresses) =>
        addresses.Distinct().OrderBy(address => address.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).ToArray();

    private async Task<IReadOnlyList<IPAddress>> LookUpAsync(string host, QueryType type, AddressFamily family, CancellationToken cancellationToken)
    {
        if (!DnsName.TryNormalizeQueryName(host, out var normalized, out _))
        {
            // A target with characters we do not ask for; dialing by name is all that is left.
            return [];
        }

        IDnsQueryResponse response;
        try
        {
            (response, _) = await _client.QueryAsync(normalized, type, cancellationToken).ConfigureAwait(false);
        }
        catch (DnsResolutionException)
        {
            return [];
        }

        if ((DnsResponseCode)response.Header.ResponseCode != DnsResponseCode.NoError)
        {
            return [];
        }

        var owners = FollowAliases(normalized, response.Answers);
        return response.Answers
            .OfType<AddressRecord>()
            .Where(record => record.Address.AddressFamily == family && owners.Contains(NameOf(record.DomainName)))
            .Select(record => record.Address)
            .ToArray();
    }

    /// <summary>The name and the aliases its CNAME chain in <paramref name="answers"/> leads to, a bounded number of steps.</summary>
    private static HashSet<string> FollowAliases(string name, IReadOnlyList<DnsResourceRecord> answers)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { name };
        var current = name;
        for (var step = 0; step < DiscoveryLimits.MaxCnameChain; step++)
        {
            var alias = answers.OfType<CNameRecord>().FirstOrDefault(record => DnsName.AreEqual(NameOf(record.DomainName), current));
            if (alias is null || !names.Add(NameOf(alias.CanonicalName)))
            {
                break;
            }

            current = NameOf(alias.CanonicalName);
        }

        return names;
    }

    /// <summary>A name from an answer as the resolver compares names: without the trailing dot, the root as ".".</summary>
    private static string NameOf(DnsString name)
    {
        var value = name.Value;
        return value.Length > 1 && value.EndsWith('.') ? value[..^1] : value;
    }
}
