using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Protocol;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The certificates the edge obtains over ACME: the configured names and the names issued on demand, each
/// ordered when missing and renewed when due, one order at a time in one loop. Issued certificates are
/// stored (<see cref="AcmeStore"/>) and published to the visitor HTTPS port through <c>publish</c>.
/// </summary>
/// <remarks>
/// A certificate is replaced only by a new one that loaded: a failed order leaves the current certificate
/// serving, records the error and tries again after a backoff (<see cref="RenewalSchedule.Backoff"/>).
/// </remarks>
internal sealed class AcmeCertificates : BackgroundService
{
    // The longest sleep of the loop: a clock that jumps (a suspended VM) is noticed within the hour.
    private static readonly TimeSpan MaxSleep = TimeSpan.FromHours(1);

    // An on-demand name no route covers any more is looked at again this often, and served until it expires.
    private static readonly TimeSpan UncoveredRecheck = TimeSpan.FromHours(1);

    // How the status shows a certificate this edge ordered.
    private const string ThisEdge = "ordered by this edge";

    // Names refused on demand are logged once each; past this many remembered, refusals are only counted.
    private const int MaxRefusalsLogged = 1000;

    private readonly AcmeOptions _options;
    private readonly ICertificateOrders _orders;
    private readonly AcmeStore? _store;
    private readonly Action<IReadOnlyDictionary<string, SslStreamCertificateContext>> _publish;
    private readonly Func<string, bool> _routeCovers;
    private readonly Func<string, bool> _coveredByFile;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AcmeMetrics? _metrics;
    private readonly Func<double> _random;
    private readonly IAcmeShare? _share;
    private readonly object _lock = new();
    private readonly Dictionary<string, Managed> _managed = new(StringComparer.Ordinal);
    private readonly Queue<DateTimeOffset> _onDemandOrders = new();
    private readonly HashSet<string> _refusalsLogged = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0);
    private IReadOnlyDictionary<string, SslStreamCertificateContext> _served = new Dictionary<string, SslStreamCertificateContext>();

    public AcmeCertificates(AcmeOptions options, ICertificateOrders orders, AcmeStore? store,
        Action<IReadOnlyDictionary<string, SslStreamCertificateContext>> publish, Func<string, bool> routeCovers,
        TimeProvider time, ILogger logger, AcmeMetrics? metrics, Func<double>? random = null, Func<string, bool>? coveredByFile = null, IAcmeShare? share = null)
    {
        _share = share;
        _coveredByFile = coveredByFile ?? (_ => false);
        _options = options;
        _orders = orders;
        _store = store;
        _publish = publish;
        _routeCovers = routeCovers;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _random = random ?? Random.Shared.NextDouble;
        metrics?.ObserveExpiry(() => Status().Where(s => s.NotAfter is not null)
            .Select(s => (string.Join(",", s.Names), (s.NotAfter!.Value - _time.GetUtcNow()).TotalDays)));
        foreach (var entry in options.Names)
        {
            var names = ParseEntry(entry);
            _managed[AcmeStore.IdFor(names[0])] = new Managed(AcmeStore.IdFor(names[0]), names, onDemand: false) { NextAttempt = DateTimeOffset.MinValue };
        }
    }

    /// <summary>Each managed certificate's state, for the status page and the admin API.</summary>
    public IReadOnlyList<AcmeCertificateStatus> Status()
    {
        lock (_lock)
        {
            return [.. _managed.Values.OrderBy(m => m.Id, StringComparer.Ordinal).Select(m => new AcmeCertificateStatus(
                m.Current is { } c ? CertificateNames(c.Certificate) : m.Names, m.OnDemand, m.Current?.Certificate.Issuer,
                m.Current is { } n ? new DateTimeOffset(n.Certificate.NotAfter.ToUniversalTime()) : null,
                m.NextAttempt == DateTimeOffset.MinValue || m.NextAttempt == DateTimeOffset.MaxValue ? null : m.NextAttempt, m.LastRenewal, m.LastError, m.Source))];
        }
    }

    /// <summary>
    /// Called with the SNI before a visitor handshake picks its certificate: a name no certificate covers, that
    /// a route covers and on-demand allows, gets an order, and the handshake waits for it a bounded time
    /// (<see cref="AcmeOptions.OnDemandHandshakeWait"/>). Never throws.
    /// </summary>
    public async ValueTask BeforeHandshakeAsync(string? serverName)
    {
        if (!_options.OnDemand || string.IsNullOrEmpty(serverName) || !HostnameRules.TryNormalize(serverName, out var name, out _) || name.StartsWith('*'))
        {
            return;
        }

        // A name the operator's own certificate files cover is theirs: no order.
        if (Covers(Volatile.Read(ref _served), name) || _coveredByFile(name) || OnDemandAttempt(name) is not { } attempt)
        {
            return;
        }

        if (_options.OnDemandHandshakeWait <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            if (!await attempt.WaitAsync(_options.OnDemandHandshakeWait, _time).ConfigureAwait(false))
            {
                AcmeLog.HandshakeFallback(_logger, name, "the order failed");
            }
        }
        catch (TimeoutException)
        {
            AcmeLog.HandshakeFallback(_logger, name, $"not issued within {_options.OnDemandHandshakeWait.TotalSeconds:0.#} s (Edge:Acme:OnDemandHandshakeWait)");
        }
    }

    /// <summary>The attempt a handshake for <paramref name="name"/> may wait for, starting one if it is allowed; <c>null</c> when none.</summary>
    private Task<bool>? OnDemandAttempt(string name)
    {
        lock (_lock)
        {
            var id = AcmeStore.IdFor(name);
            if (_managed.TryGetValue(id, out var known))
            {
                // Ordered already: wait for the attempt in progress, not for one after a backoff.
                return known.Attempt?.Task;
            }

            if (OnDemandRefusal(name) is { } refusal)
            {
                _metrics?.OnDemandRefused(refusal.Reason);
                if (_refusalsLogged.Count < MaxRefusalsLogged && _refusalsLogged.Add(name + "/" + refusal.Reason))
                {
                    AcmeLog.OnDemandRefused(_logger, name, refusal.Detail);
                }

                return null;
            }

            _onDemandOrders.Enqueue(_time.GetUtcNow());
            var managed = new Managed(id, [name], onDemand: true) { NextAttempt = DateTimeOffset.MinValue };
            managed.Attempt = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _managed[id] = managed;
            _wake.Release();
            return managed.Attempt.Task;
        }
    }

    /// <summary>Why <paramref name="name"/> gets no certificate on demand, or <c>null</c> when it may; called under the lock.</summary>
    private (string Reason, string Detail)? OnDemandRefusal(string name)
    {
        if (!_routeCovers(name))
        {
            return ("no_route", "no registered route covers it");
        }

        if (_options.OnDemandAllowedNames.Count > 0 && !_options.OnDemandAllowedNames.Any(p => HostnameRules.IsCoveredBy(name, p)))
        {
            return ("not_allowed", "it matches no pattern of Edge:Acme:OnDemandAllowedNames");
        }

        var hourAgo = _time.GetUtcNow() - TimeSpan.FromHours(1);
        while (_onDemandOrders.TryPeek(out var at) && at <= hourAgo)
        {
            _onDemandOrders.Dequeue();
        }

        return _onDemandOrders.Count >= _options.OnDemandOrdersPerHour
            ? ("rate", $"{_onDemandOrders.Count} on-demand orders in the last hour reach Edge:Acme:OnDemandOrdersPerHour")
            : null;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LoadStored();
        Publish();
        if (_share is not null)
        {
            _share.Changed += AdoptShared;
            AdoptShared(_share.Current);
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunDueAsync(stoppingToken).ConfigureAwait(false);
                await SleepAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                AcmeLog.LoopFault(_logger, ex, _options.RetryDelay.TotalSeconds);
                await Task.Delay(_options.RetryDelay, _time, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private async Task RunDueAsync(CancellationToken ct)
    {
        while (true)
        {
            Managed? due;
            lock (_lock)
            {
                var now = _time.GetUtcNow();
                due = _managed.Values.Where(m => m.NextAttempt <= now).OrderBy(m => m.NextAttempt).FirstOrDefault();
            }

            if (due is null)
            {
                return;
            }

            await RunAsync(due, ct).ConfigureAwait(false);
        }
    }

    private async Task SleepAsync(CancellationToken ct)
    {
        TimeSpan delay;
        lock (_lock)
        {
            var next = _managed.Values.Select(m => m.NextAttempt).DefaultIfEmpty(DateTimeOffset.MaxValue).Min();
            var until = next == DateTimeOffset.MaxValue ? MaxSleep : next - _time.GetUtcNow();
            delay = until <= TimeSpan.Zero ? TimeSpan.Zero : until > MaxSleep ? MaxSleep : until;
        }

        if (delay == TimeSpan.Zero)
        {
            return;
        }

        using var either = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var woken = _wake.WaitAsync(either.Token);
        await Task.WhenAny(Task.Delay(delay, _time, either.Token), woken).ConfigureAwait(false);
        await either.CancelAsync().ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>One order for one managed certificate: on success it serves at once, on failure the old one stays.</summary>
    private async Task RunAsync(Managed managed, CancellationToken ct)
    {
        var current = managed.Current;
        if (managed.OnDemand && !_routeCovers(managed.Names[0]))
        {
            lock (_lock)
            {
                // Never ordered for a name no route covers; one already issued serves until it expires.
                if (current is null)
                {
                    _managed.Remove(managed.Id);
                }
                else
                {
                    managed.NextAttempt = _time.GetUtcNow() + UncoveredRecheck;
                }
            }

            Complete(managed, false);
            return;
        }

        lock (_lock)
        {
            managed.Attempt ??= new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        if (!await TakeOrderAsync(managed, ct).ConfigureAwait(false))
        {
            return;
        }

        var names = string.Join(", ", managed.Names);
        AcmeLog.Ordering(_logger, names, current is null ? "no certificate yet" : "renewal due");
        try
        {
            var issued = await _orders.OrderAsync(managed.Names, current?.Certificate, ct).ConfigureAwait(false);
            var (certificate, chain) = AcmeStore.Load(issued.ChainPem, issued.KeyPem);
            _store?.SaveCertificate(managed.Id, issued.ChainPem, issued.KeyPem);
            var window = await RenewalWindowAsync(certificate, names, ct).ConfigureAwait(false);
            var served = new ServedCertificate(certificate, SslStreamCertificateContext.Create(certificate, chain, offline: true));
            DateTimeOffset renewAt;
            lock (_lock)
            {
                managed.Current = served;
                managed.Failures = 0;
                managed.LastError = null;
                managed.LastRenewal = _time.GetUtcNow();
                managed.Source = ThisEdge;
                managed.NextAttempt = renewAt = RenewAt(certificate, window);
            }

            Publish();
            _metrics?.OrderIssued();
            AcmeLog.Issued(_logger, names, certificate.Issuer, certificate.NotAfter.ToUniversalTime(), renewAt);
            Complete(managed, true);

            // Shared once it serves here, so its echo from the store's watch is not taken for a newer one.
            await ShareAsync(managed, issued, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Failed(managed, ex as AcmeException ?? new AcmeException(ex is CryptographicException or InvalidOperationException ? "bad_certificate" : "internal", ex.Message, inner: ex));
        }
        finally
        {
            if (_share is not null)
            {
                await _share.UnlockOrderAsync(managed.Id, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// In a cluster, takes the order lock of <paramref name="managed"/>: <c>false</c> (and a later look) when another
    /// edge holds it or the store cannot be asked, or when the certificate that edge shared meanwhile makes an order
    /// needless. Alone, always <c>true</c>.
    /// </summary>
    private async Task<bool> TakeOrderAsync(Managed managed, CancellationToken ct)
    {
        if (_share is null)
        {
            return true;
        }

        var names = string.Join(", ", managed.Names);
        string? holder;
        IssuedPem? shared = null;
        try
        {
            holder = await _share.TryLockOrderAsync(managed.Id, ct).ConfigureAwait(false);
            if (holder is null)
            {
                // Another edge may have finished an order just before this one took the lock.
                shared = await _share.ReadCertificateAsync(managed.Id, ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is Cluster.EtcdException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            lock (_lock)
            {
                managed.NextAttempt = _time.GetUtcNow() + _options.RetryDelay;
            }

            AcmeLog.OrderLockUnavailable(_logger, names, ex.Message, _options.RetryDelay.TotalSeconds);
            Complete(managed, false);
            return false;
        }

        if (holder is not null)
        {
            bool first;
            lock (_lock)
            {
                var source = "being ordered by edge " + holder;
                first = managed.Source != source;
                managed.Source = source;
                managed.NextAttempt = _time.GetUtcNow() + _options.RetryDelay;
            }

            if (first)
            {
                AcmeLog.OrderedByPeer(_logger, names, holder, _options.RetryDelay.TotalSeconds);
            }

            return false;
        }

        if (shared is not null && Adopt(managed.Id, shared) && managed.NextAttempt > _time.GetUtcNow())
        {
            await _share.UnlockOrderAsync(managed.Id, ct).ConfigureAwait(false);
            return false;
        }

        return true;
    }

    /// <summary>Shares an issued certificate with the cluster; a failure is logged, the certificate serves here anyway.</summary>
    private async Task ShareAsync(Managed managed, IssuedPem issued, CancellationToken ct)
    {
        if (_share is null)
        {
            return;
        }

        try
        {
            await _share.PublishCertificateAsync(managed.Id, issued, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is Cluster.EtcdException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            AcmeLog.SharePublishFailed(_logger, string.Join(", ", managed.Names), ex.Message);
        }
    }

    /// <summary>Serves the certificates the cluster shares that are newer than what this edge has.</summary>
    private void AdoptShared(AcmeShared shared)
    {
        foreach (var (id, pem) in shared.Certificates)
        {
            Adopt(id, pem);
        }
    }

    /// <summary>
    /// Serves a certificate the cluster shares under <paramref name="id"/> when it loads, covers the name its id
    /// is made from, and outlives the one served; returns whether it was taken.
    /// </summary>
    private bool Adopt(string id, IssuedPem pem)
    {
        X509Certificate2 certificate;
        X509Certificate2Collection chain;
        try
        {
            (certificate, chain) = AcmeStore.Load(pem.ChainPem, pem.KeyPem);
        }
        catch (Exception ex) when (ex is InvalidOperationException or CryptographicException or ArgumentException)
        {
            AcmeLog.SharedCertificateUnreadable(_logger, id, ex.Message);
            return false;
        }

        var names = CertificateNames(certificate);
        if (!AcmeStore.IsValidId(id) || !names.Contains(id.Replace("_wildcard", "*", StringComparison.Ordinal), StringComparer.Ordinal))
        {
            AcmeLog.SharedCertificateUnreadable(_logger, id, $"its names ({string.Join(", ", names)}) do not include the one its key is named for");
            certificate.Dispose();
            return false;
        }

        Managed managed;
        lock (_lock)
        {
            if (!_managed.TryGetValue(id, out managed!))
            {
                managed = _managed[id] = new Managed(id, names, onDemand: false) { PeerOnly = true };
            }

            if (managed.Current is { } current && current.Certificate.NotAfter >= certificate.NotAfter)
            {
                certificate.Dispose();
                return false;
            }

            managed.Current = new ServedCertificate(certificate, SslStreamCertificateContext.Create(certificate, chain, offline: true));
            managed.Source = "shared by the cluster";
            managed.Failures = 0;
            managed.LastError = null;
            managed.NextAttempt = managed.PeerOnly ? DateTimeOffset.MaxValue : RenewAt(certificate, null);
        }

        _store?.SaveCertificate(id, pem.ChainPem, pem.KeyPem);
        Publish();
        AcmeLog.SharedCertificateAdopted(_logger, string.Join(", ", names), certificate.NotAfter.ToUniversalTime(), managed.NextAttempt);
        Complete(managed, true);
        return true;
    }

    private void Failed(Managed managed, AcmeException error)
    {
        TimeSpan retry;
        lock (_lock)
        {
            managed.Failures++;
            managed.LastError = $"{_time.GetUtcNow():u} {error.Type}: {error.Detail}";
            retry = RenewalSchedule.Backoff(managed.Failures, _options.RetryDelay, _options.MaxRetryDelay, error.RetryAfter, _random());
            managed.NextAttempt = _time.GetUtcNow() + retry;
        }

        _metrics?.OrderFailed(error.Reason);
        var serving = managed.Current is { } c ? $"The certificate valid until {c.Certificate.NotAfter.ToUniversalTime():u} keeps serving" : "The fallback certificate serves meanwhile";
        AcmeLog.OrderFailed(_logger, string.Join(", ", managed.Names), error.Type, error.Detail, serving, retry.TotalSeconds);
        Complete(managed, false);
    }

    private void Complete(Managed managed, bool issued)
    {
        TaskCompletionSource<bool>? attempt;
        lock (_lock)
        {
            attempt = managed.Attempt;
            managed.Attempt = null;
        }

        attempt?.TrySetResult(issued);
    }

    private async Task<(DateTimeOffset, DateTimeOffset)?> RenewalWindowAsync(X509Certificate2 certificate, string names, CancellationToken ct)
    {
        try
        {
            return await _orders.RenewalWindowAsync(certificate, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AcmeException or HttpRequestException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            AcmeLog.RenewalInfoUnavailable(_logger, names, ex.Message);
            return null;
        }
    }

    private DateTimeOffset RenewAt(X509Certificate2 certificate, (DateTimeOffset, DateTimeOffset)? window) =>
        RenewalSchedule.RenewAt(certificate.NotBefore.ToUniversalTime(), certificate.NotAfter.ToUniversalTime(), window, _options.RenewAfterLifetimeFraction, _random());

    /// <summary>Serves what is stored from an earlier run: configured names and, with on-demand on, names issued on demand.</summary>
    private void LoadStored()
    {
        if (_store is null)
        {
            return;
        }

        foreach (var (id, certificate, chain) in _store.LoadCertificates((path, reason) => AcmeLog.StoredCertificateUnreadable(_logger, path, reason)))
        {
            lock (_lock)
            {
                if (!_managed.TryGetValue(id, out var managed))
                {
                    if (!_options.OnDemand)
                    {
                        continue;
                    }

                    managed = _managed[id] = new Managed(id, CertificateNames(certificate), onDemand: true);
                }

                managed.Current = new ServedCertificate(certificate, SslStreamCertificateContext.Create(certificate, chain, offline: true));

                // Names changed in the configuration since: order the new set now, serving the old meanwhile.
                var sameNames = CertificateNames(certificate).Order(StringComparer.Ordinal).SequenceEqual(managed.Names.Order(StringComparer.Ordinal));
                managed.NextAttempt = sameNames ? RenewAt(certificate, null) : DateTimeOffset.MinValue;
                AcmeLog.StoredCertificateLoaded(_logger, string.Join(", ", managed.Names), certificate.NotAfter.ToUniversalTime(), managed.NextAttempt);
            }
        }
    }

    private void Publish()
    {
        var byName = new Dictionary<string, SslStreamCertificateContext>(StringComparer.Ordinal);
        lock (_lock)
        {
            foreach (var managed in _managed.Values.OrderBy(m => m.OnDemand).ThenBy(m => m.Id, StringComparer.Ordinal))
            {
                if (managed.Current is { } served)
                {
                    foreach (var name in CertificateNames(served.Certificate))
                    {
                        byName.TryAdd(name, served.Context);
                    }
                }
            }
        }

        Volatile.Write(ref _served, byName);
        _publish(byName);
    }

    private static bool Covers(IReadOnlyDictionary<string, SslStreamCertificateContext> served, string name) =>
        served.ContainsKey(name) || (HostnameRules.WildcardFor(name) is { } wildcard && served.ContainsKey(wildcard));

    private static string[] CertificateNames(X509Certificate2 certificate) =>
        [.. certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames()).Select(n => n.ToLowerInvariant())];

    /// <summary>One configured entry (<c>example.com,www.example.com</c>) as normalized names; the options' validation has checked them.</summary>
    internal static string[] ParseEntry(string entry) =>
        [.. entry.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => HostnameRules.TryNormalize(n, out var name, out var error) ? name : throw new InvalidOperationException($"Edge:Acme:Names: {error}."))
            .Distinct(StringComparer.Ordinal)];

    private sealed record ServedCertificate(X509Certificate2 Certificate, SslStreamCertificateContext Context);

    private sealed class Managed(string id, string[] names, bool onDemand)
    {
        public string Id { get; } = id;

        public string[] Names { get; } = names;

        public bool OnDemand { get; } = onDemand;

        public ServedCertificate? Current { get; set; }

        public DateTimeOffset NextAttempt { get; set; }

        public int Failures { get; set; }

        public string? LastError { get; set; }

        public DateTimeOffset? LastRenewal { get; set; }

        public TaskCompletionSource<bool>? Attempt { get; set; }

        /// <summary>Where the certificate comes from, for people: this edge's order, the cluster, or the edge ordering it now.</summary>
        public string? Source { get; set; }

        /// <summary>A certificate another edge of the cluster ordered for names not configured here: served, renewed by the others.</summary>
        public bool PeerOnly { get; init; }
    }
}

/// <summary>One ACME certificate as the status page and the admin API show it.</summary>
internal sealed record AcmeCertificateStatus(IReadOnlyList<string> Names, bool OnDemand, string? Issuer, DateTimeOffset? NotAfter, DateTimeOffset? NextAttempt, DateTimeOffset? LastRenewal, string? LastError,
    string? Source = null);
