using Tunnel.Edge.Cluster;

namespace Tunnel.Edge.Dns;

/// <summary>Who may write a hostname's records: this edge alone, or in a cluster the edge holding its lock.</summary>
internal interface IDnsWriterLock
{
    /// <summary>
    /// Takes the lock for <paramref name="hostname"/> unless another edge holds it; returns <c>null</c> when this
    /// edge holds it (now or already), else the holder's name.
    /// </summary>
    /// <exception cref="EtcdException">The store could not be asked; nobody may write meanwhile.</exception>
    Task<string?> TryAcquireAsync(string hostname, CancellationToken cancellationToken);

    /// <summary>Gives the lock back (the records are gone); best effort.</summary>
    Task ReleaseAsync(string hostname, CancellationToken cancellationToken);
}

/// <summary>An edge on its own: it always writes.</summary>
internal sealed class SoleWriterLock : IDnsWriterLock
{
    /// <inheritdoc />
    public Task<string?> TryAcquireAsync(string hostname, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    /// <inheritdoc />
    public Task ReleaseAsync(string hostname, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// A lock per hostname in etcd: the key <c>PREFIX dns-locks/HOSTNAME</c>, created only when absent and
/// under this edge's lease (the one its routes live under), holding the edge's name. The holder writes
/// the name's records for the whole cluster while it lives; when it stops or loses etcd for longer than
/// the lease, the key goes with the lease and the next edge that serves the name takes over.
/// </summary>
internal sealed class EtcdWriterLock : IDnsWriterLock, IDisposable
{
    private const string Folder = "dns-locks/";

    private readonly EtcdGateway _etcd;
    private readonly EtcdRouteStore _store;
    private readonly string _prefix;
    private readonly string _self;

    /// <summary>Creates the lock on the cluster's etcd.</summary>
    public EtcdWriterLock(EdgeOptions options, EtcdRouteStore store)
    {
        ArgumentNullException.ThrowIfNull(options);
        var cluster = options.Cluster;
        _etcd = new EtcdGateway(cluster.StoreEndpoints, TimeSpan.FromSeconds(Math.Max(1, cluster.LeaseTtl.TotalSeconds / 3)), EtcdTlsOptions.From(cluster), EtcdLogin.From(cluster));
        _store = store;
        _prefix = cluster.KeyPrefix + Folder;
        _self = options.Name;
    }

    /// <inheritdoc />
    public async Task<string?> TryAcquireAsync(string hostname, CancellationToken cancellationToken)
    {
        var lease = _store.LeaseId;
        if (lease == 0)
        {
            throw new EtcdException("the edge has no etcd lease yet");
        }

        var holder = await _etcd.PutIfAbsentAsync(_prefix + hostname, _self, lease, cancellationToken).ConfigureAwait(false);
        return holder == _self ? null : holder.Length == 0 ? "(another edge, just released)" : holder;
    }

    /// <inheritdoc />
    public async Task ReleaseAsync(string hostname, CancellationToken cancellationToken)
    {
        try
        {
            if (await TryAcquireAsync(hostname, cancellationToken).ConfigureAwait(false) is null)
            {
                await _etcd.DeleteAsync(_prefix + hostname, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is EtcdException or HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // The key goes with the lease anyway.
        }
    }

    /// <inheritdoc />
    public void Dispose() => _etcd.Dispose();
}
