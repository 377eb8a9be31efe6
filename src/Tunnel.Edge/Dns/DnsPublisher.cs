using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Cluster;
using Tunnel.Edge.Routing;

namespace Tunnel.Edge.Dns;

/// <summary>
/// Publishes the hostnames of the edge's routes (and, in a cluster, of every edge's) in the configured
/// zones: when a name that a zone's patterns cover gains its first connector, the edge that holds the
/// name's lock creates its record (<see cref="DnsUpdateClient.PublishAsync"/>); once no connector serves
/// it for <see cref="EdgeDnsOptions.RemoveAfter"/>, it deletes it. One loop does the work, woken by route
/// changes and by its own timers; routing never waits for it, and a DNS server that is down or refuses
/// costs retries with a bounded backoff, logged and counted, nothing more. Also writes the TXT records
/// of ACME DNS-01 challenges (<see cref="SetTxtAsync"/>, <see cref="RemoveTxtAsync"/>).
/// </summary>
internal sealed class DnsPublisher : BackgroundService, Certificates.Acme.IDnsChallengeRecords
{
    // How often an edge looks again at a name another edge of the cluster writes, in case that edge went.
    private static readonly TimeSpan DefaultPeerRecheck = TimeSpan.FromSeconds(30);

    // The longest the loop sleeps with nothing due: a bound, not a schedule.
    private static readonly TimeSpan MaxSleep = TimeSpan.FromMinutes(10);

    private readonly EdgeDnsOptions _options;
    private readonly string _self;
    private readonly IReadOnlyList<DnsZone> _zones;
    private readonly DnsUpdateClient _client;
    private readonly IDnsWriterLock _lock;
    private readonly RouteTable _routes;
    private readonly ConnectionRouteTables? _connections;
    private readonly IRouteStore _store;
    private readonly DnsMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TimeSpan _peerRecheck;
    private readonly string _owner;
    private readonly ConcurrentDictionary<string, DnsRecordEntry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Name, string Value), DnsRecordStatus> _txt = new();
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Creates the publisher (the options were checked at start: <see cref="DnsServices.Validate"/>).</summary>
    public DnsPublisher(EdgeOptions options, IReadOnlyList<DnsZone> zones, IDnsWriterLock writerLock, RouteTable routes, IRouteStore store, DnsMetrics metrics, ILoggerFactory loggers, TimeProvider time, ConnectionRouteTables? connections = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        _options = options.Dns;
        _self = options.Name;
        _zones = [.. zones.OrderByDescending(z => z.Name.Length)];
        _owner = OwnerOf(options);
        _client = new DnsUpdateClient(_owner, _options.Ttl, _options.UpdateTimeout, time);
        _lock = writerLock;
        _routes = routes;
        _connections = connections;
        _store = store;
        _metrics = metrics;
        _logger = loggers.CreateLogger("Tunnel.Edge.Dns");
        _time = time;
        _peerRecheck = options.Cluster.IsEnabled ? options.Cluster.LeaseTtl : DefaultPeerRecheck;
    }

    /// <summary>Every record the edge publishes or published, and the TXT records it holds, for the status page and the admin API.</summary>
    public IReadOnlyList<DnsRecordStatus> Records() =>
        [.. _entries.Values.Select(e => e.Snapshot()).Concat(_txt.Values).OrderBy(r => r.Name, StringComparer.Ordinal).ThenBy(r => r.Type, StringComparer.Ordinal)];

    /// <summary>The configured zones' names.</summary>
    public IEnumerable<string> Zones => _zones.Select(z => z.Name);

    /// <summary>
    /// Adds the TXT record <paramref name="name"/> = <paramref name="value"/> (beside any other TXT of the name)
    /// through the TSIG-signed path of the zone containing <paramref name="name"/>: for ACME DNS-01
    /// (<c>_acme-challenge.NAME</c>). Returns once the zone's primary accepted it.
    /// </summary>
    /// <exception cref="InvalidOperationException">No configured zone contains the name.</exception>
    /// <exception cref="DnsUpdateException">The server refused the update or did not answer; the message says why.</exception>
    public Task SetTxtAsync(string name, string value, CancellationToken cancellationToken) => ChangeTxtAsync(name, value, add: true, cancellationToken);

    /// <summary>Deletes the TXT record <paramref name="name"/> = <paramref name="value"/> (other TXT records of the name stay).</summary>
    /// <exception cref="InvalidOperationException">No configured zone contains the name.</exception>
    /// <exception cref="DnsUpdateException">The server refused the update or did not answer; the message says why.</exception>
    public Task RemoveTxtAsync(string name, string value, CancellationToken cancellationToken) => ChangeTxtAsync(name, value, add: false, cancellationToken);

    private async Task ChangeTxtAsync(string name, string value, bool add, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        var normalized = name.Trim().TrimEnd('.').ToLowerInvariant();
        var zone = _zones.FirstOrDefault(z => z.Contains(normalized))
            ?? throw new InvalidOperationException($"No zone of Edge:Dns:Zones ({string.Join(", ", Zones)}) contains '{normalized}'.");
        var result = add
            ? await _client.AddTxtAsync(zone, normalized, value, cancellationToken).ConfigureAwait(false)
            : await _client.DeleteTxtAsync(zone, normalized, value, cancellationToken).ConfigureAwait(false);
        _metrics.Update(add ? "txt_set" : "txt_remove", result);
        var key = (normalized, value);
        if (!result.Succeeded)
        {
            DnsLog.TxtFailed(_logger, normalized, zone.Name, result.Reason, result.Detail);
            _txt[key] = new DnsRecordStatus(normalized, "TXT", value, zone.Name, "failed", result.Reason, result.Detail, _time.GetUtcNow(), _self);
            throw new DnsUpdateException($"The TXT update of {normalized} in zone {zone.Name} at {zone.Server} failed: {result.Detail}.", result.Reason);
        }

        DnsLog.TxtChanged(_logger, normalized, value, add ? "added" : "deleted", zone.Name);
        if (add)
        {
            _txt[key] = new DnsRecordStatus(normalized, "TXT", value, zone.Name, "published", result.Reason, null, _time.GetUtcNow(), _self);
        }
        else
        {
            _txt.TryRemove(key, out _);
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        DnsLog.Publishing(_logger, string.Join(", ", _zones.Select(z => $"{z.Name} at {z.Server}")), _owner,
            _options.RemoveAfter is { } grace ? $"removed {grace.TotalSeconds:0.#} s after their last connector goes" : "kept when their last connector goes");
        _routes.HostnamesChanged += Wake;
        _store.Changed += Wake;
        if (_connections is not null)
        {
            _connections.Http.HostnamesChanged += Wake;
            _connections.Tls.HostnamesChanged += Wake;
            _connections.Tcp.HostnamesChanged += Wake;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            DateTimeOffset next;
            try
            {
                next = await ReconcileAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A bug must not end publishing for the edge's life: say so and go on.
                DnsLog.PublishFailed(_logger, "(all)", _options.FirstRetryDelay.TotalSeconds, ex);
                next = _time.GetUtcNow() + _options.FirstRetryDelay;
            }

            await SleepAsync(next - _time.GetUtcNow(), stoppingToken).ConfigureAwait(false);
        }
    }

    private void Wake() => _wake.Writer.TryWrite(true);

    private async Task SleepAsync(TimeSpan delay, CancellationToken stoppingToken)
    {
        if (delay <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new CancellationTokenSource(delay < MaxSleep ? delay : MaxSleep, _time);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, timer.Token);
        try
        {
            await _wake.Reader.WaitToReadAsync(either.Token).ConfigureAwait(false);
            _wake.Reader.TryRead(out _);
        }
        catch (OperationCanceledException)
        {
            // Time is up, or the edge stops: the loop looks.
        }
    }

    /// <summary>One pass: publishes what is served and not yet written, removes what is past its grace; returns when the next pass is due.</summary>
    private async Task<DateTimeOffset> ReconcileAsync(CancellationToken stoppingToken)
    {
        var served = ServedHostnames();
        foreach (var hostname in served)
        {
            if (_zones.FirstOrDefault(z => z.Publishes(hostname)) is not { } zone)
            {
                continue;
            }

            var entry = _entries.GetOrAdd(hostname, h => new DnsRecordEntry(h, zone, zone.RecordsFor(h, _options.Ttl)));
            if (entry.UnservedSince is not null)
            {
                entry.UnservedSince = null;
                entry.State = entry.Written ? "published" : entry.State;
            }

            if (!entry.Written && _time.GetUtcNow() >= entry.NextAttempt)
            {
                await PublishAsync(entry, stoppingToken).ConfigureAwait(false);
            }
        }

        foreach (var entry in _entries.Values.Where(e => !served.Contains(e.Hostname)).ToArray())
        {
            if (!entry.Written)
            {
                // Nothing of this edge's is in the zone for it.
                _entries.TryRemove(entry.Hostname, out _);
            }
            else if (_options.RemoveAfter is { } grace)
            {
                entry.UnservedSince ??= _time.GetUtcNow();
                entry.State = "removal-pending";
                var now = _time.GetUtcNow();
                if (now >= entry.UnservedSince + grace && now >= entry.NextAttempt)
                {
                    await RemoveAsync(entry, grace, stoppingToken).ConfigureAwait(false);
                }
            }
        }

        return NextDue();
    }

    private DateTimeOffset NextDue()
    {
        var next = _time.GetUtcNow() + MaxSleep;
        foreach (var entry in _entries.Values)
        {
            if (!entry.Written && entry.NextAttempt < next)
            {
                next = entry.NextAttempt;
            }
            else if (entry.UnservedSince is { } since && _options.RemoveAfter is { } grace)
            {
                var due = since + grace > entry.NextAttempt ? since + grace : entry.NextAttempt;
                next = due < next ? due : next;
            }
        }

        return next;
    }

    private HashSet<string> ServedHostnames()
    {
        var served = new HashSet<string>(_routes.Hostnames(), StringComparer.Ordinal);
        if (_connections is not null)
        {
            served.UnionWith(_connections.Http.Hostnames());
            served.UnionWith(_connections.Tls.Hostnames());
            served.UnionWith(_connections.Tcp.Hostnames());
        }

        served.UnionWith(_store.Current.Routes.Keys);
        return served;
    }

    private async Task PublishAsync(DnsRecordEntry entry, CancellationToken stoppingToken)
    {
        if (!await HoldsLockAsync(entry, stoppingToken).ConfigureAwait(false))
        {
            return;
        }

        var result = await _client.PublishAsync(entry.Zone, entry.Hostname, entry.Records, stoppingToken).ConfigureAwait(false);
        _metrics.Update("publish", result);
        Record(entry, result);
        var type = DnsRecordEntry.TypeOf(entry.Records);
        var value = DnsRecordEntry.ValueOf(entry.Records);
        if (result.Succeeded)
        {
            entry.Written = true;
            entry.State = "published";
            switch (result.Reason)
            {
                case "present":
                    DnsLog.Present(_logger, entry.Hostname, type, value, entry.Zone.Name);
                    break;
                case "replaced":
                    DnsLog.Replaced(_logger, entry.Hostname, entry.Zone.Name, type, value);
                    break;
                default:
                    DnsLog.Published(_logger, entry.Hostname, type, value, entry.Zone.Name);
                    break;
            }

            return;
        }

        entry.State = result.Reason == "foreign_record" ? "foreign" : "failed";
        LogFailure(entry, result, Backoff(entry));
    }

    private async Task RemoveAsync(DnsRecordEntry entry, TimeSpan grace, CancellationToken stoppingToken)
    {
        if (!await HoldsLockAsync(entry, stoppingToken).ConfigureAwait(false))
        {
            // Another edge of the cluster writes the name now: its records are its to remove.
            _entries.TryRemove(entry.Hostname, out _);
            return;
        }

        var result = await _client.RemoveAsync(entry.Zone, entry.Hostname, entry.Records, stoppingToken).ConfigureAwait(false);
        _metrics.Update("remove", result);
        Record(entry, result);
        if (!result.Succeeded)
        {
            LogFailure(entry, result, Backoff(entry));
            return;
        }

        if (result.Reason == "removed")
        {
            DnsLog.Removed(_logger, entry.Hostname, DnsRecordEntry.TypeOf(entry.Records), entry.Zone.Name, grace.TotalSeconds);
        }
        else
        {
            DnsLog.NotRemoved(_logger, entry.Hostname, entry.Zone.Name, result.Detail);
        }

        _entries.TryRemove(entry.Hostname, out _);
        await _lock.ReleaseAsync(entry.Hostname, stoppingToken).ConfigureAwait(false);
    }

    /// <summary>Whether this edge may write the entry's name now; records why not on the entry.</summary>
    private async Task<bool> HoldsLockAsync(DnsRecordEntry entry, CancellationToken stoppingToken)
    {
        string? holder;
        try
        {
            holder = await _lock.TryAcquireAsync(entry.Hostname, stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EtcdException or HttpRequestException or IOException or OperationCanceledException && !stoppingToken.IsCancellationRequested)
        {
            entry.LastError = "cluster lock: " + ex.Message;
            DnsLog.LockUnavailable(_logger, entry.Hostname, ex.Message, Backoff(entry).TotalSeconds);
            return false;
        }

        if (holder is null)
        {
            entry.Writer = _self;
            return true;
        }

        if (entry.Writer != holder)
        {
            DnsLog.WrittenByPeer(_logger, entry.Hostname, holder);
        }

        entry.Writer = holder;
        entry.State = "peer";
        entry.Written = false;
        entry.LastError = null;
        entry.NextAttempt = _time.GetUtcNow() + _peerRecheck;
        return false;
    }

    private void Record(DnsRecordEntry entry, DnsUpdateResult result)
    {
        entry.LastUpdate = _time.GetUtcNow();
        entry.LastResult = result.Reason;
        entry.LastError = result.Succeeded ? null : result.Detail;
        if (result.Succeeded)
        {
            entry.RetryDelay = TimeSpan.Zero;
            entry.NextAttempt = entry.LastUpdate.Value;
        }
    }

    private void LogFailure(DnsRecordEntry entry, DnsUpdateResult result, TimeSpan retry)
    {
        var server = entry.Zone.Server.ToString();
        if (result.Unreachable)
        {
            DnsLog.Unreachable(_logger, server, entry.Zone.Name, entry.Hostname, result.Detail, retry.TotalSeconds);
        }
        else if (result.Reason == "foreign_record")
        {
            DnsLog.Foreign(_logger, entry.Hostname, entry.Zone.Name, result.Detail, retry.TotalSeconds);
        }
        else
        {
            DnsLog.Refused(_logger, server, entry.Hostname, entry.Zone.Name, result.Reason.ToUpperInvariant(), result.Detail, retry.TotalSeconds);
        }
    }

    /// <summary>Doubles the entry's retry delay (from <see cref="EdgeDnsOptions.FirstRetryDelay"/> up to <see cref="EdgeDnsOptions.MaxRetryDelay"/>) and schedules the next try.</summary>
    private TimeSpan Backoff(DnsRecordEntry entry)
    {
        entry.RetryDelay = entry.RetryDelay <= TimeSpan.Zero
            ? _options.FirstRetryDelay
            : TimeSpan.FromTicks(Math.Min(entry.RetryDelay.Ticks * 2, _options.MaxRetryDelay.Ticks));
        entry.NextAttempt = _time.GetUtcNow() + entry.RetryDelay;
        return entry.RetryDelay;
    }

    /// <summary>The marker value: <see cref="EdgeDnsOptions.Owner"/>, or <c>tunnel-edge/</c> and the edge's name (in a cluster, the cluster's key prefix without its slashes).</summary>
    public static string OwnerOf(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Dns.Owner is { Length: > 0 } owner ? owner
            : "tunnel-edge/" + (options.Cluster.IsEnabled ? options.Cluster.KeyPrefix.Trim('/') : options.Name);
    }
}

/// <summary>A DNS update the server refused or never answered; <see cref="Reason"/> is the metric's reason (refused, badsig, unreachable ...).</summary>
public sealed class DnsUpdateException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DnsUpdateException(string message, string reason)
        : base(message)
    {
        Reason = reason;
    }

    /// <summary>Creates the exception.</summary>
    public DnsUpdateException()
    {
        Reason = "";
    }

    /// <summary>Creates the exception.</summary>
    public DnsUpdateException(string message)
        : base(message)
    {
        Reason = "";
    }

    /// <summary>Creates the exception.</summary>
    public DnsUpdateException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = "";
    }

    /// <summary>The cause in lower case: the RCODE or TSIG error (refused, notauth, badsig, badkey ...), or unreachable.</summary>
    public string Reason { get; }
}
