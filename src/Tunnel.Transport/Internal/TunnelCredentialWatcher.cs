using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Watches the files the tunnel's identity is read from (the credential file, or the certificate, key
/// and CA files) and loads a renewed credential when they change; checks the certificate's expiry.
/// A file system watcher reacts within a fraction of a second; a periodic read of the files catches
/// what it misses (atomic renames on some file systems, secret volumes that swap a symlink, a full
/// event buffer). A change that does not load (half written, corrupt, a key that does not match)
/// leaves the current credential in use and is reported once per content, in the log and the status.
/// </summary>
internal sealed class TunnelCredentialWatcher : IDisposable
{
    // Writers that truncate and write in several calls raise several events; waiting this long after
    // the first one usually sees the finished file, so the half-written one is not reported.
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    private readonly TunnelSettings _settings;
    private readonly TunnelStatus _status;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Action<TunnelDialState> _renewed;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _changed = new(0);
    private readonly List<FileSystemWatcher> _watchers = [];
    private byte[]? _lastContentHash;
    private (string CredentialId, ExpiryLevel Level) _lastExpiryWarning;
    private Task _loop = Task.CompletedTask;
    private int _disposed;

    public TunnelCredentialWatcher(TunnelSettings settings, TunnelStatus status, ILogger logger, TimeProvider time, Action<TunnelDialState> renewed)
    {
        _settings = settings;
        _status = status;
        _logger = logger;
        _time = time;
        _renewed = renewed;
    }

    private enum ExpiryLevel
    {
        Valid,
        Expiring,
        Expired,
    }

    public void Start()
    {
        var state = _settings.Current;
        var now = _time.GetUtcNow();
        _status.UpdateCredential(_ => Describe(state, now));
        TunnelLog.CredentialLoaded(_logger, state.CredentialId, state.Source, state.Certificate.Subject, NotAfter(state));
        _lastContentHash = HashFiles();
        CheckExpiry();

        foreach (var directory in _settings.WatchedFiles.Select(Path.GetDirectoryName).Distinct(StringComparer.Ordinal))
        {
            if (directory is null)
            {
                continue;
            }

            try
            {
                var watcher = new FileSystemWatcher(directory)
                {
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
                    IncludeSubdirectories = false,
                };

                // Any change in the directory triggers a read: the files' content decides, so an atomic
                // rename, a symlink swap or an editor's backup dance are all seen the same way.
                watcher.Changed += (_, _) => Signal();
                watcher.Created += (_, _) => Signal();
                watcher.Deleted += (_, _) => Signal();
                watcher.Renamed += (_, _) => Signal();
                watcher.Error += (_, _) => Signal();
                watcher.EnableRaisingEvents = true;
                _watchers.Add(watcher);
            }
            catch (Exception ex) when (ex is ArgumentException or IOException or PlatformNotSupportedException or UnauthorizedAccessException)
            {
                TunnelLog.CredentialWatchFailed(_logger, directory, ex.Message, _settings.CredentialCheckInterval.TotalSeconds);
            }
        }

        _loop = Task.Run(RunAsync);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var watcher in _watchers)
        {
            watcher.Dispose();
        }

        try
        {
            _stopping.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Signal()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            _changed.Release();
        }
        catch (ObjectDisposedException)
        {
            // Stopped meanwhile; this runs on the watcher's thread, where an exception would end the process.
        }
    }

    private async Task RunAsync()
    {
        var stopping = _stopping.Token;
        try
        {
            while (true)
            {
                var changed = await _changed.WaitAsync(_settings.CredentialCheckInterval, stopping).ConfigureAwait(false);
                if (changed)
                {
                    await Task.Delay(Debounce, _time, stopping).ConfigureAwait(false);
                    while (_changed.Wait(0))
                    {
                        // The events of one write count once.
                    }
                }

                try
                {
                    Check();
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    TunnelLog.CredentialCheckFault(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        finally
        {
            _stopping.Dispose();
            _changed.Dispose();
        }
    }

    private void Check()
    {
        var hash = HashFiles();
        if (_lastContentHash is null || !hash.AsSpan().SequenceEqual(_lastContentHash))
        {
            _lastContentHash = hash;
            Reload();
        }

        CheckExpiry();
    }

    private void Reload()
    {
        var result = _settings.Reload();
        var now = _time.GetUtcNow();
        if (result.State is { } renewed)
        {
            _status.UpdateCredential(_ => Describe(renewed, now));
            TunnelLog.CredentialRenewed(_logger, renewed.CredentialId, renewed.Source, NotAfter(renewed), _status.RegisteredConnections);
            _renewed(renewed);
        }
        else if (result.Problem is { } problem)
        {
            var current = _settings.Current;
            TunnelLog.CredentialReloadFailed(_logger, current.CredentialId, problem);
            _status.UpdateCredential(status => (status ?? Describe(current, now)) with { ReloadProblem = $"The changed credential files are not usable ({problem}); credential {current.CredentialId} stays in use." });
        }
        else
        {
            // Back to what is loaded (a bad write was undone): nothing is wrong any more.
            _status.UpdateCredential(status => status is null ? null : status with { ReloadProblem = null });
        }
    }

    private void CheckExpiry()
    {
        var state = _settings.Current;
        var notAfter = NotAfter(state);
        var remaining = notAfter - _time.GetUtcNow();
        var level = remaining <= TimeSpan.Zero ? ExpiryLevel.Expired
            : remaining <= WarningPeriod(state) ? ExpiryLevel.Expiring
            : ExpiryLevel.Valid;
        string? problem = level switch
        {
            ExpiryLevel.Expired => $"Certificate {state.CredentialId} expired at {notAfter:u}; the edge refuses new connections with it.",
            ExpiryLevel.Expiring => $"Certificate {state.CredentialId} expires at {notAfter:u}, in {remaining.TotalHours:0.#} h.",
            _ => null,
        };
        _status.UpdateCredential(status => status is null ? null : status with { ExpiryProblem = problem });

        // Warn once per credential and level, not at every check.
        if (level != ExpiryLevel.Valid && _lastExpiryWarning != (state.CredentialId, level))
        {
            _lastExpiryWarning = (state.CredentialId, level);
            if (level == ExpiryLevel.Expired)
            {
                TunnelLog.CredentialExpired(_logger, state.CredentialId, notAfter);
            }
            else
            {
                TunnelLog.CredentialExpiring(_logger, state.CredentialId, notAfter, remaining.TotalHours);
            }
        }
    }

    /// <summary>
    /// <see cref="TunnelSettings.CertificateExpiryWarning"/>, but at most a third of the certificate's
    /// lifetime: a short-lived certificate that is renewed automatically (a day, an hour) would
    /// otherwise warn from the moment it is issued. Renewers commonly act at two thirds of the lifetime.
    /// </summary>
    private TimeSpan WarningPeriod(TunnelDialState state)
    {
        var lifetime = state.Certificate.NotAfter - state.Certificate.NotBefore;
        var third = lifetime / 3;
        return third < _settings.CertificateExpiryWarning ? third : _settings.CertificateExpiryWarning;
    }

    /// <summary>A hash of the watched files' content (or of why a file cannot be read).</summary>
    private byte[] HashFiles()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var path in _settings.WatchedFiles)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(path + "\n"));
            try
            {
                hash.AppendData(File.ReadAllBytes(path));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                hash.AppendData(System.Text.Encoding.UTF8.GetBytes("unreadable: " + ex.GetType().Name));
            }
        }

        return hash.GetHashAndReset();
    }

    private static TunnelCredentialStatus Describe(TunnelDialState state, DateTimeOffset now) =>
        new(state.CredentialId, state.Source, state.Certificate.Subject, NotAfter(state), now);

    private static DateTimeOffset NotAfter(TunnelDialState state) => new(state.Certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);
}
