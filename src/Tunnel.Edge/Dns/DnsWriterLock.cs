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
/// In a cluster, the lock per hostname in etcd (<see cref="EtcdLeaseLock"/>, key <c>PREFIX dns-locks/HOSTNAME</c>):
/// the holder writes the name's records for the whole cluster while it lives.
/// </summary>
internal sealed class EtcdWriterLock : IDnsWriterLock, IDisposable
{
    private const string Folder = "dns-locks/";

    private readonly EtcdGateway _etcd;
    private readonly EtcdLeaseLock _lock;

    /// <summary>Creates the lock on the cluster's etcd.</summary>
    public EtcdWriterLock(EdgeOptions options, EtcdRouteStore store)
    {
        ArgumentNullException.ThrowIfNull(options);
        _etcd = EtcdGateway.ForCluster(options.Cluster);
        _lock = new EtcdLeaseLock(_etcd, store, options.Cluster.KeyPrefix + Folder, options.Name);
    }

    /// <inheritdoc />
    public Task<string?> TryAcquireAsync(string hostname, CancellationToken cancellationToken) => _lock.TryAcquireAsync(hostname, cancellationToken);

    /// <inheritdoc />
    public Task ReleaseAsync(string hostname, CancellationToken cancellationToken) => _lock.ReleaseAsync(hostname, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => _etcd.Dispose();
}
