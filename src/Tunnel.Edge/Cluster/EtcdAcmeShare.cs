using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The cluster's ACME state in etcd, under <c>PREFIX acme/</c>: <c>http/TOKEN</c> and <c>tls-alpn/NAME</c>
/// hold the challenge answers in progress (under the answering edge's lease), <c>locks/ID</c> the name of the
/// edge ordering certificate ID (under its lease: a dead edge's lock goes with it), and <c>certificates/ID</c>
/// each issued certificate (no lease: it outlives the edge that ordered it) as JSON with the chain in the
/// clear and the private key sealed with AES-256-GCM under a key derived from <see cref="AcmeOptions.ClusterKeyPath"/>.
/// Every edge learns the state from the route store's watch (<see cref="ClusterSnapshot.Acme"/>).
/// </summary>
internal sealed class EtcdAcmeShare : IAcmeShare, IDisposable
{
    private const string HttpFolder = "http/";
    private const string TlsAlpnFolder = "tls-alpn/";
    private const string LocksFolder = "locks/";
    private const string CertificatesFolder = "certificates/";
    private readonly EtcdGateway _etcd;
    private readonly EtcdRouteStore _store;
    private readonly EtcdLeaseLock _orderLock;
    private readonly string _prefix;
    private readonly AcmeKeySeal _seal;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly HashSet<string> _unreadableLogged = new(StringComparer.Ordinal);
    private ImmutableDictionary<string, string> _seen = ImmutableDictionary<string, string>.Empty;
    private Dictionary<string, (string Raw, IssuedPem Pem)> _opened = new(StringComparer.Ordinal);
    private AcmeShared _current = AcmeShared.Empty;

    /// <summary>Reads the cluster key (refusing a file others can read, or one too short) and follows <paramref name="store"/>.</summary>
    public EtcdAcmeShare(EdgeOptions options, EtcdRouteStore store, ILoggerFactory loggers)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(store);
        var cluster = options.Cluster;
        _etcd = EtcdGateway.ForCluster(cluster);
        _store = store;
        _prefix = cluster.KeyPrefix + ClusterSnapshot.AcmeFolder;
        _orderLock = new EtcdLeaseLock(_etcd, store, _prefix + LocksFolder, options.Name);
        _seal = AcmeKeySeal.FromFile(options.Acme.ClusterKeyPath ?? throw new InvalidOperationException("Edge:Acme:ClusterKeyPath is not set."));
        _logger = loggers.CreateLogger("Tunnel.Edge.Acme");
        EdgeName = options.Name;
        AnswerPropagation = options.Acme.ClusterAnswerPropagation;
        store.Changed += OnStoreChanged;
        OnStoreChanged();
    }

    /// <inheritdoc />
    public string EdgeName { get; }

    /// <inheritdoc />
    public TimeSpan AnswerPropagation { get; }

    /// <inheritdoc />
    public AcmeShared Current => Volatile.Read(ref _current);

    /// <inheritdoc />
    public event Action<AcmeShared>? Changed;

    /// <inheritdoc />
    public Task PublishAnswerAsync(AcmeSharedAnswer answer, CancellationToken ct) =>
        _etcd.PutAsync(AnswerKey(answer), answer.KeyAuthorization, Lease(), ct);

    /// <inheritdoc />
    public async Task WithdrawAnswerAsync(AcmeSharedAnswer answer, CancellationToken ct)
    {
        try
        {
            await _etcd.DeleteAsync(AnswerKey(answer), ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is EtcdException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // The key goes with the lease anyway; a stale answer harms nothing.
        }
    }

    /// <inheritdoc />
    public Task<string?> TryLockOrderAsync(string id, CancellationToken ct) => _orderLock.TryAcquireAsync(id, ct);

    /// <inheritdoc />
    public Task UnlockOrderAsync(string id, CancellationToken ct) => _orderLock.ReleaseAsync(id, ct);

    /// <inheritdoc />
    public Task PublishCertificateAsync(string id, IssuedPem pem, CancellationToken ct) =>
        _etcd.PutAsync(_prefix + CertificatesFolder + id, _seal.Seal(id, pem, EdgeName), 0, ct);

    /// <inheritdoc />
    public async Task<IssuedPem?> ReadCertificateAsync(string id, CancellationToken ct)
    {
        var key = _prefix + CertificatesFolder + id;
        var (_, pairs) = await _etcd.RangePrefixAsync(key, ct).ConfigureAwait(false);
        return pairs.FirstOrDefault(p => p.Key == key) is { Value: { } value } ? TryOpen(id, value) : null;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _store.Changed -= OnStoreChanged;
        _etcd.Dispose();
    }

    /// <summary>The certificate in a stored value, or <c>null</c> (logged once per id and value) when it cannot be opened.</summary>
    private IssuedPem? TryOpen(string id, string value)
    {
        try
        {
            return _seal.Open(id, value);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException or CryptographicException)
        {
            lock (_unreadableLogged)
            {
                if (_unreadableLogged.Add(id + "\n" + value.GetHashCode(StringComparison.Ordinal)))
                {
                    AcmeLog.SharedCertificateUnreadable(_logger, id, ex is AuthenticationTagMismatchException
                        ? "its key was sealed with another cluster key (Edge:Acme:ClusterKeyPath differs between the edges)" : ex.Message);
                }
            }

            return null;
        }
    }

    private long Lease() => _store.LeaseId is var lease and not 0 ? lease : throw new EtcdException("the edge has no etcd lease yet");

    private string AnswerKey(AcmeSharedAnswer answer) =>
        _prefix + (answer.Kind == AcmeSharedAnswer.Http ? HttpFolder : TlsAlpnFolder) + answer.Key;

    /// <summary>Turns the watched keys into <see cref="Current"/> when they changed; opens only certificates whose value changed.</summary>
    private void OnStoreChanged()
    {
        AcmeShared shared;
        lock (_lock)
        {
            var keys = _store.Current.Acme;
            if (ReferenceEquals(keys, _seen) || (keys.Count == _seen.Count && keys.All(k => _seen.TryGetValue(k.Key, out var v) && v == k.Value)))
            {
                return;
            }

            _seen = keys;
            var http = new Dictionary<string, string>(StringComparer.Ordinal);
            var tlsAlpn = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            var opened = new Dictionary<string, (string Raw, IssuedPem Pem)>(StringComparer.Ordinal);
            foreach (var (key, value) in keys)
            {
                if (key.StartsWith(HttpFolder, StringComparison.Ordinal))
                {
                    http[key[HttpFolder.Length..]] = value;
                }
                else if (key.StartsWith(TlsAlpnFolder, StringComparison.Ordinal))
                {
                    tlsAlpn[key[TlsAlpnFolder.Length..]] = value;
                }
                else if (key.StartsWith(CertificatesFolder, StringComparison.Ordinal) && key[CertificatesFolder.Length..] is { Length: > 0 } id)
                {
                    var pem = _opened.TryGetValue(id, out var known) && known.Raw == value ? known.Pem : TryOpen(id, value);
                    if (pem is not null)
                    {
                        opened[id] = (value, pem);
                    }
                }
            }

            _opened = opened;
            shared = new AcmeShared(http, tlsAlpn, opened.ToDictionary(o => o.Key, o => o.Value.Pem, StringComparer.Ordinal));
            Volatile.Write(ref _current, shared);
        }

        Changed?.Invoke(shared);
    }
}
