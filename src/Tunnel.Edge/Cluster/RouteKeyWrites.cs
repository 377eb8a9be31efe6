namespace Tunnel.Edge.Cluster;

/// <summary>
/// The route keys this edge wrote under its lease and the readiness each says, and which writes are due:
/// a new hostname's key at once, a hostname gone at once, a change of readiness at most once per
/// <see cref="MinRewriteInterval"/> per hostname. An app whose readiness flaps so costs etcd at most a
/// few writes a second per hostname, and a change undone within the interval is never written.
/// </summary>
internal sealed class RouteKeyWrites(TimeProvider time)
{
    /// <summary>The least time between two writes of one hostname's key: at most four a second.</summary>
    public static readonly TimeSpan MinRewriteInterval = TimeSpan.FromMilliseconds(250);

    private readonly Dictionary<string, (bool Ready, long WrittenAt)> _written = new(StringComparer.Ordinal);

    /// <summary>Route keys written under the current lease.</summary>
    public int Count => _written.Count;

    /// <summary>The readiness the key of <paramref name="hostname"/> says, <c>null</c> when it has no key.</summary>
    public bool? Published(string hostname) => _written.TryGetValue(hostname, out var written) ? written.Ready : null;

    /// <summary>Forgets every key (a new lease: each is written again).</summary>
    public void Clear() => _written.Clear();

    /// <summary>What to write and delete now so the keys say <paramref name="desired"/> (hostname to ready), and when to look again for a change held back.</summary>
    public RouteKeyPlan Plan(IReadOnlyDictionary<string, bool> desired)
    {
        ArgumentNullException.ThrowIfNull(desired);
        var now = time.GetTimestamp();
        List<(string Hostname, bool Ready)> writes = [];
        TimeSpan? recheckIn = null;
        foreach (var (hostname, ready) in desired)
        {
            if (!_written.TryGetValue(hostname, out var written))
            {
                writes.Add((hostname, ready));
                continue;
            }

            if (written.Ready == ready)
            {
                continue;
            }

            var since = time.GetElapsedTime(written.WrittenAt, now);
            if (since >= MinRewriteInterval)
            {
                writes.Add((hostname, ready));
            }
            else if (recheckIn is null || MinRewriteInterval - since < recheckIn)
            {
                recheckIn = MinRewriteInterval - since;
            }
        }

        var deletes = _written.Keys.Where(hostname => !desired.ContainsKey(hostname)).ToArray();
        return new RouteKeyPlan(writes, deletes, recheckIn);
    }

    /// <summary>Records a key written.</summary>
    public void Wrote(string hostname, bool ready) => _written[hostname] = (ready, time.GetTimestamp());

    /// <summary>Records a key deleted.</summary>
    public void Deleted(string hostname) => _written.Remove(hostname);
}

/// <summary>The route key writes due now, the deletes, and when to look again for a change held back (<c>null</c>: none is).</summary>
internal sealed record RouteKeyPlan(IReadOnlyList<(string Hostname, bool Ready)> Writes, IReadOnlyList<string> Deletes, TimeSpan? RecheckIn);
