namespace Tunnel.Edge.Cluster;

/// <summary>
/// A lock per name in etcd: the key <c>FOLDER NAME</c>, created only when absent and under this edge's lease
/// (the one its routes live under), holding the edge's name. The holder keeps it while it lives; when it
/// stops, or loses etcd for longer than the lease, the key goes with the lease and the next edge takes it.
/// Used for the DNS writer of a hostname and the ACME order of a certificate.
/// </summary>
internal sealed class EtcdLeaseLock(EtcdGateway etcd, EtcdRouteStore store, string folder, string self)
{
    /// <summary>Takes the lock for <paramref name="name"/> unless another edge holds it: <c>null</c> when this edge holds it (now or already), else the holder's name.</summary>
    /// <exception cref="EtcdException">The store could not be asked, or the edge has no lease yet.</exception>
    public async Task<string?> TryAcquireAsync(string name, CancellationToken cancellationToken)
    {
        var lease = store.LeaseId;
        if (lease == 0)
        {
            throw new EtcdException("the edge has no etcd lease yet");
        }

        var holder = await etcd.PutIfAbsentAsync(folder + name, self, lease, cancellationToken).ConfigureAwait(false);
        return holder == self ? null : holder.Length == 0 ? "(another edge, just released)" : holder;
    }

    /// <summary>Gives the lock back when this edge holds it; best effort (the key goes with the lease anyway).</summary>
    public async Task ReleaseAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            if (await TryAcquireAsync(name, cancellationToken).ConfigureAwait(false) is null)
            {
                await etcd.DeleteAsync(folder + name, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is EtcdException or HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // The key goes with the lease anyway.
        }
    }
}
