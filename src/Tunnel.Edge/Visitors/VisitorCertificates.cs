using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Protocol;

namespace Tunnel.Edge.Visitors;

/// <summary>
/// The HTTPS port's certificates, chosen per handshake by SNI, and kept current with their files.
/// </summary>
/// <remarks>
/// Each certificate becomes one <see cref="SslStreamCertificateContext"/> (its chain built once), and a
/// lookup from every SAN DNS name to it is published as one immutable snapshot, so a handshake costs a
/// dictionary lookup or two and never waits on a reload. Files are read whole and compared by hash:
/// a reload that finds the same bytes changes nothing, and a file that fails to load leaves the
/// previous certificate in place (and is logged once per bad content, not once per check).
/// </remarks>
internal sealed class VisitorCertificates : IDisposable
{
    // File-system events come in bursts (a temp file written, then renamed over the certificate, then
    // the same for the key); one check a little after the last event sees the finished pair.
    private static readonly TimeSpan ReloadDebounce = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// The largest certificate or key file read. A chain of a few certificates is under 10 KiB; a file
    /// past this (or a link to a device that never ends) is skipped, not read into memory.
    /// </summary>
    internal const long MaxFileBytes = 1024 * 1024;

    private readonly EdgeOptions _options;
    private readonly ILogger _logger;
    private readonly object _reloadLock = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly List<FileSystemWatcher> _watchers = [];

    // Directory files skipped, with why: each is logged once per reason, not at every check.
    private readonly Dictionary<string, FileRefusal> _skipped = new(StringComparer.Ordinal);
    private readonly Timer _debounce;
    private readonly Timer _periodic;
    private Snapshot _snapshot = Snapshot.Empty;
    private Snapshot _issued = Snapshot.Empty;
    private bool _disposed;

    private VisitorCertificates(EdgeOptions options, ILogger logger, Telemetry.EdgeMetrics? metrics)
    {
        _options = options;
        _logger = logger;
        metrics?.ObserveVisitorCertificatesSkipped(ObserveSkipped);
        _debounce = new Timer(_ => ReloadFromTimer(), null, Timeout.Infinite, Timeout.Infinite);
        _periodic = new Timer(_ => ReloadFromTimer(), null, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>Whether any certificate is configured (the HTTPS port opens only then).</summary>
    public bool IsEmpty => _snapshot.Default is null;

    /// <summary>How many certificates are being served.</summary>
    public int Count => _snapshot.Count;

    /// <summary>
    /// Loads every configured certificate. A missing or corrupt file, or a directory with no
    /// certificate, throws <see cref="InvalidOperationException"/> naming it: the edge does not start.
    /// </summary>
    public static VisitorCertificates Load(EdgeOptions options, ILogger logger, Telemetry.EdgeMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var certificates = new VisitorCertificates(options, logger, metrics);
        foreach (var (certificatePath, keyPath) in certificates.ConfiguredFiles(initial: true))
        {
            var entry = new Entry(certificatePath, keyPath);
            var loaded = LoadFiles(entry, out _);
            entry.Current = loaded;
            certificates._entries[certificatePath] = entry;
            EdgeLog.VisitorCertificateLoaded(logger, certificatePath, loaded.Certificate.Subject, string.Join(", ", loaded.Names), loaded.Certificate.NotAfter);
        }

        certificates.Publish();
        return certificates;
    }

    /// <summary>Starts watching the files; changes reach new handshakes after a short debounce.</summary>
    public void StartWatching()
    {
        if (IsEmpty)
        {
            return;
        }

        var directories = _entries.Values.SelectMany(e => new[] { e.CertificatePath, e.KeyPath })
            .Select(p => Path.GetDirectoryName(p)!)
            .Append(_options.CertificateDirectory is { Length: > 0 } d ? Path.GetFullPath(d) : null)
            .OfType<string>()
            .Distinct(StringComparer.Ordinal);
        foreach (var directory in directories)
        {
            try
            {
                var watcher = new FileSystemWatcher(directory)
                {
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                };
                watcher.Changed += (_, _) => ScheduleReload();
                watcher.Created += (_, _) => ScheduleReload();
                watcher.Renamed += (_, _) => ScheduleReload();
                watcher.Deleted += (_, _) => ScheduleReload();
                watcher.Error += (_, e) => EdgeLog.VisitorCertificateWatchFailed(_logger, directory, e.GetException().Message);
                watcher.EnableRaisingEvents = true;
                _watchers.Add(watcher);
            }
            catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                // Out of inotify watches, say: the periodic check still picks changes up.
                EdgeLog.VisitorCertificateWatchFailed(_logger, directory, ex.Message);
            }
        }

        _periodic.Change(_options.CertificateCheckInterval, _options.CertificateCheckInterval);
    }

    /// <summary>
    /// The certificate for a handshake: by SNI among the certificates obtained over ACME, then among the
    /// files; else the default (the first configured file, or the ACME fallback when there is no file).
    /// </summary>
    public SslStreamCertificateContext Select(string? serverName)
    {
        var snapshot = Volatile.Read(ref _snapshot);
        var issued = Volatile.Read(ref _issued);
        if (!string.IsNullOrEmpty(serverName))
        {
            var name = serverName.TrimEnd('.').ToLowerInvariant();
            if ((Find(issued, name) ?? Find(snapshot, name)) is { } found)
            {
                return found;
            }
        }

        return snapshot.Default ?? issued.Default ?? throw new InvalidOperationException("No visitor certificate is configured.");
    }

    /// <summary>
    /// Publishes the certificates obtained over ACME (they win over files for their names) and the
    /// certificate served when nothing matches and no file is configured.
    /// </summary>
    public void SetIssued(IReadOnlyDictionary<string, SslStreamCertificateContext> byName, SslStreamCertificateContext? fallback) =>
        Volatile.Write(ref _issued, new Snapshot(byName, fallback, byName.Values.Distinct().Count()));

    /// <summary>Whether a certificate file names <paramref name="name"/> in its SANs (exactly or by wildcard); the default alone does not count.</summary>
    public bool FileCovers(string name) => Find(Volatile.Read(ref _snapshot), name) is not null;

    private static SslStreamCertificateContext? Find(Snapshot snapshot, string name) =>
        snapshot.ByName.TryGetValue(name, out var exact) ? exact
        : HostnameRules.WildcardFor(name) is { } wildcard && snapshot.ByName.TryGetValue(wildcard, out var covering) ? covering
        : null;

    /// <summary>Checks every file now; used by the watchers and the periodic timer.</summary>
    public void Reload()
    {
        lock (_reloadLock)
        {
            if (_disposed)
            {
                return;
            }

            var configured = ConfiguredFiles(initial: false).ToList();
            var changed = false;
            foreach (var stale in _entries.Keys.Except(configured.Select(c => c.CertificatePath)).ToList())
            {
                _entries.Remove(stale);
                changed = true;
            }

            foreach (var (certificatePath, keyPath) in configured)
            {
                if (!_entries.TryGetValue(certificatePath, out var entry))
                {
                    entry = new Entry(certificatePath, keyPath);
                    _entries[certificatePath] = entry;
                }

                changed |= Refresh(entry);
            }

            if (changed)
            {
                Publish();
            }
        }
    }

    public void Dispose()
    {
        lock (_reloadLock)
        {
            _disposed = true;
        }

        foreach (var watcher in _watchers)
        {
            watcher.Dispose();
        }

        _debounce.Dispose();
        _periodic.Dispose();
    }

    private void ReloadFromTimer()
    {
        try
        {
            Reload();
        }
        catch (Exception ex)
        {
            // A timer callback that throws ends the process; the edge keeps serving what it has.
            EdgeLog.VisitorCertificateCheckFault(_logger, ex);
        }
    }

    private void ScheduleReload()
    {
        try
        {
            _debounce.Change(ReloadDebounce, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Loads an entry's files again if their bytes changed; returns whether its certificate did.</summary>
    private bool Refresh(Entry entry)
    {
        Loaded loaded;
        string hash;
        try
        {
            loaded = LoadFiles(entry, out hash);
        }
        catch (InvalidOperationException ex)
        {
            var failedHash = ex.Data["hash"] as string ?? "";
            if (failedHash != entry.FailedHash)
            {
                entry.FailedHash = failedHash;
                EdgeLog.VisitorCertificateReloadFailed(_logger, entry.CertificatePath, entry.Current is null ? "it is not served" : "the previous certificate stays in use", ex.Message);
            }

            return false;
        }

        entry.FailedHash = null;
        if (entry.Current?.Hash == hash)
        {
            return false;
        }

        entry.Current = loaded;
        EdgeLog.VisitorCertificateLoaded(_logger, entry.CertificatePath, loaded.Certificate.Subject, string.Join(", ", loaded.Names), loaded.Certificate.NotAfter);
        return true;
    }

    private void Publish()
    {
        var byName = new Dictionary<string, SslStreamCertificateContext>(StringComparer.Ordinal);
        SslStreamCertificateContext? first = null;
        foreach (var entry in OrderedEntries())
        {
            if (entry.Current is not { } loaded)
            {
                continue;
            }

            first ??= loaded.Context;
            foreach (var name in loaded.Names)
            {
                byName.TryAdd(name, loaded.Context);
            }
        }

        Volatile.Write(ref _snapshot, new Snapshot(byName, first, _entries.Values.Count(e => e.Current is not null)));
    }

    private IEnumerable<Entry> OrderedEntries()
    {
        var order = ConfiguredFiles(initial: false).Select(c => c.CertificatePath).ToList();
        return _entries.Values.OrderBy(e => order.IndexOf(e.CertificatePath) is var i and >= 0 ? i : int.MaxValue);
    }

    /// <summary>The configured pairs in priority order: the list, then the directory's pairs by name.</summary>
    private IEnumerable<(string CertificatePath, string KeyPath)> ConfiguredFiles(bool initial)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in _options.Certificates)
        {
            if (string.IsNullOrWhiteSpace(file.CertificatePath))
            {
                throw new InvalidOperationException("A visitor certificate entry has no CertificatePath.");
            }

            var certificatePath = Path.GetFullPath(file.CertificatePath);
            if (seen.Add(certificatePath))
            {
                yield return (certificatePath, Path.GetFullPath(string.IsNullOrWhiteSpace(file.KeyPath) ? file.CertificatePath : file.KeyPath));
            }
        }

        if (_options.CertificateDirectory is not { Length: > 0 } directory)
        {
            yield break;
        }

        directory = Path.GetFullPath(directory);
        string[]? pems = null;
        try
        {
            pems = Directory.GetFiles(directory, "*.pem");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (initial)
            {
                throw new InvalidOperationException($"Cannot read the certificate directory '{directory}': {ex.Message}", ex);
            }

            // Keep serving what was loaded; the next check tries again.
            EdgeLog.VisitorCertificateWatchFailed(_logger, directory, ex.Message);
        }

        if (pems is null)
        {
            foreach (var entry in _entries.Values.Where(e => e.CertificatePath.StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal)).ToList())
            {
                yield return (entry.CertificatePath, entry.KeyPath);
            }

            yield break;
        }

        var found = 0;
        foreach (var pem in pems.Order(StringComparer.Ordinal))
        {
            var key = Path.ChangeExtension(pem, ".key");
            if (File.Exists(key) && !IsSkipped(pem, key) && seen.Add(pem))
            {
                found++;
                yield return (pem, key);
            }
        }

        if (initial && found == 0)
        {
            throw new InvalidOperationException($"The certificate directory '{directory}' holds no NAME.pem with a NAME.key beside it.");
        }
    }

    private IEnumerable<System.Diagnostics.Metrics.Measurement<int>> ObserveSkipped()
    {
        lock (_reloadLock)
        {
            return _skipped.Values.GroupBy(r => r.Reason)
                .Select(g => new System.Diagnostics.Metrics.Measurement<int>(g.Count(), new KeyValuePair<string, object?>("reason", g.Key)))
                .ToList();
        }
    }

    /// <summary>Whether a directory pair is left out (a device, FIFO or oversized file); logs each new reason once.</summary>
    private bool IsSkipped(string certificatePath, string keyPath)
    {
        if ((FileProblem(certificatePath) ?? FileProblem(keyPath)) is not { } problem)
        {
            _skipped.Remove(certificatePath);
            return false;
        }

        if (!_skipped.TryGetValue(certificatePath, out var logged) || logged != problem)
        {
            _skipped[certificatePath] = problem;
            EdgeLog.VisitorCertificateSkipped(_logger, certificatePath, problem.Message);
        }

        return true;
    }

    /// <summary>
    /// Why a certificate or key file is not read, or <c>null</c>. Links are followed: what they point to
    /// must be a regular file of 1 byte to <see cref="MaxFileBytes"/>. Devices, FIFOs and sockets report no
    /// size, so they are never opened (a FIFO would block the reader; /dev/zero would never end).
    /// </summary>
    private static FileRefusal? FileProblem(string path)
    {
        FileInfo target;
        try
        {
            target = File.ResolveLinkTarget(path, returnFinalTarget: true) is { } final ? new FileInfo(final.FullName) : new FileInfo(path);
            if (!target.Exists)
            {
                return null; // Reading reports a missing file.
            }

            var length = target.Length;
            if (length == 0)
            {
                return new FileRefusal("not_regular_file", $"'{target.FullName}' is not a regular file with content (a device, FIFO, socket or empty file)");
            }

            if (length > MaxFileBytes)
            {
                return new FileRefusal("too_large", $"'{target.FullName}' is {length} bytes, over the limit of {MaxFileBytes} bytes for a certificate or key file");
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Reads a certificate or key file, refusing what <see cref="FileProblem"/> refuses, and never more than the limit.</summary>
    private static string ReadBounded(string path)
    {
        if (FileProblem(path) is { } problem)
        {
            throw new IOException(problem.Message);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var buffer = new byte[MaxFileBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = stream.Read(buffer, length, buffer.Length - length)) > 0)
        {
            length += read;
        }

        if (length > MaxFileBytes)
        {
            throw new IOException($"'{path}' grew over the limit of {MaxFileBytes} bytes while it was read");
        }

        return System.Text.Encoding.UTF8.GetString(buffer, 0, length);
    }

    private static Loaded LoadFiles(Entry entry, out string hash)
    {
        string certificatePem, keyPem;
        if (Protocol.Credentials.SecretFilePermissions.Problem(entry.KeyPath, "visitor certificate's private key file") is { } keyProblem)
        {
            throw new InvalidOperationException(keyProblem) { Data = { ["hash"] = "permissions:" + keyProblem } };
        }

        try
        {
            certificatePem = ReadBounded(entry.CertificatePath);
            keyPem = entry.KeyPath == entry.CertificatePath ? certificatePem : ReadBounded(entry.KeyPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"Cannot read the visitor certificate '{entry.CertificatePath}' (key '{entry.KeyPath}'): {ex.Message}", ex) { Data = { ["hash"] = "unreadable:" + ex.GetType().Name } };
        }

        hash = Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(certificatePem + "\0" + keyPem)));
        try
        {
            var certificate = X509Certificate2.CreateFromPem(certificatePem, keyPem);
            var chain = new X509Certificate2Collection();
            chain.ImportFromPem(certificatePem);
            var intermediates = new X509Certificate2Collection();
            for (var i = 1; i < chain.Count; i++)
            {
                intermediates.Add(chain[i]);
            }

            var names = CertificateIssuer.GetDnsNames(certificate)
                .Select(n => n.TrimEnd('.').ToLowerInvariant())
                .Distinct(StringComparer.Ordinal)
                .ToArray();

            // offline: the chain is what the file holds; no handshake should wait on fetching
            // intermediates from the network.
            var context = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
            return new Loaded(certificate, context, names, hash);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException($"Cannot load the visitor certificate '{entry.CertificatePath}' with key '{entry.KeyPath}': {ex.Message}", ex) { Data = { ["hash"] = hash } };
        }
    }

    private sealed class Entry(string certificatePath, string keyPath)
    {
        public string CertificatePath { get; } = certificatePath;

        public string KeyPath { get; } = keyPath;

        public Loaded? Current { get; set; }

        public string? FailedHash { get; set; }
    }

    /// <summary>Why a file is not read: <paramref name="Reason"/> for the metric, <paramref name="Message"/> for the log.</summary>
    private readonly record struct FileRefusal(string Reason, string Message);

    private sealed record Loaded(X509Certificate2 Certificate, SslStreamCertificateContext Context, string[] Names, string Hash);

    private sealed record Snapshot(IReadOnlyDictionary<string, SslStreamCertificateContext> ByName, SslStreamCertificateContext? Default, int Count)
    {
        public static Snapshot Empty { get; } = new(new Dictionary<string, SslStreamCertificateContext>(), null, 0);
    }
}
