using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Edge.Identity;

/// <summary>
/// The edge's TLS server certificate, the CA certificates whose origin certificates it accepts, and
/// the revocation list. Loaded at start, where a missing or corrupt file stops the edge with a message
/// naming it; then checked every <see cref="EdgeOptions.CredentialCheckInterval"/> and reloaded when a
/// file changes, so a renewed server certificate, a rotated CA or a revocation takes effect without a
/// restart. A file that turns corrupt later is logged and the loaded state kept.
/// </summary>
internal sealed class EdgeCredentials : IDisposable
{
    private const string MissingPaths = "The edge needs CaCertificatePath, ServerCertificatePath and ServerKeyPath (tunnel-edge init writes them).";

    private static readonly Oid ClientAuthOid = new("1.3.6.1.5.5.7.3.2");

    private readonly EdgeOptions? _options;
    private readonly Dictionary<string, (DateTime, long)> _stamps = [];
    private readonly Lock _reloadLock = new();
    private State _state;

    // The revocation list is this edge's file and the cluster's keys together; each part is replaced
    // alone, and the union is what Revocations returns.
    private RevocationList _fileRevocations;
    private RevocationList _clusterRevocations = RevocationList.Empty;
    private ITimer? _timer;
    private ILogger? _logger;

    /// <summary>Creates the credentials from loaded certificates (never reloaded).</summary>
    public EdgeCredentials(X509Certificate2 serverCertificate, X509Certificate2Collection trustedCas)
        : this(null, Check(serverCertificate, trustedCas, RevocationList.Empty))
    {
    }

    private EdgeCredentials(EdgeOptions? options, State state)
    {
        _options = options;
        _state = state;
        _fileRevocations = state.Revocations;
    }

    /// <summary>The edge's TLS server certificate with its key (the current one).</summary>
    public X509Certificate2 ServerCertificate => _state.ServerCertificate;

    /// <summary>The current server certificate, ready for TLS handshakes.</summary>
    public SslStreamCertificateContext ServerCertificateContext => _state.ServerContext;

    /// <summary>The CAs that issue origin certificates (the current trust bundle).</summary>
    public X509Certificate2Collection TrustedCas => _state.TrustedCas;

    /// <summary>The current revocation list: this edge's file and, in a cluster, every edge's revocations.</summary>
    public RevocationList Revocations => _state.Revocations;

    /// <summary>The revocations of this edge's own file (what it publishes to its cluster).</summary>
    internal RevocationList FileRevocations => _fileRevocations;

    /// <summary>Raised after a reload changed the trust bundle or the revocation list: live connections are checked again.</summary>
    public event Action? TrustChanged;

    /// <summary>Why the options do not name the edge's CA and server certificate files, or <c>null</c> when they do.</summary>
    public static string? MissingPathsProblem(EdgeOptions options) =>
        string.IsNullOrEmpty(options.CaCertificatePath) || string.IsNullOrEmpty(options.ServerCertificatePath) || string.IsNullOrEmpty(options.ServerKeyPath)
            ? MissingPaths
            : null;

    /// <summary>Loads the files named in the options.</summary>
    public static EdgeCredentials Load(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options is not { CaCertificatePath: { Length: > 0 } caPath, ServerCertificatePath: { Length: > 0 } certificatePath, ServerKeyPath: { Length: > 0 } keyPath })
        {
            throw new InvalidOperationException(MissingPaths);
        }

        var credentials = new EdgeCredentials(options, Check(
            CertificateIssuer.LoadPem(certificatePath, keyPath),
            LoadCas(caPath),
            options.RevocationListPath is { Length: > 0 } revocations ? RevocationList.Load(revocations) : RevocationList.Empty));
        credentials.RecordStamps();
        return credentials;
    }

    /// <summary>
    /// Why <paramref name="certificate"/> may not serve now: revoked, or no longer chaining to a trusted CA
    /// as a client certificate; <c>null</c> when it may.
    /// </summary>
    public CredentialProblem? Check(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var state = _state;
        if (state.Revocations.Find(TunnelCredential.IdOf(certificate)) is { } revoked)
        {
            return new CredentialProblem(true, $"The credential {revoked.Id} was revoked on {revoked.RevokedAt:u}{(revoked.Reason.Length > 0 ? ": " + revoked.Reason : "")}.");
        }

        using var chain = new X509Chain { ChainPolicy = CreateClientChainPolicy() };
        if (!chain.Build(certificate))
        {
            var statuses = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct();
            return new CredentialProblem(false, $"The credential {TunnelCredential.IdOf(certificate)} is no longer trusted: {string.Join("; ", statuses)}");
        }

        return null;
    }

    /// <summary>The chain policy that origin certificates must pass: a trusted CA of the current bundle, client-auth usage.</summary>
    public X509ChainPolicy CreateClientChainPolicy()
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(_state.TrustedCas);
        policy.ApplicationPolicy.Add(ClientAuthOid);
        return policy;
    }

    /// <summary>Starts checking the files for changes; loaded from files only (a no-op otherwise).</summary>
    internal void StartWatching(ILogger logger, TimeProvider time)
    {
        if (_options is null || _timer is not null)
        {
            return;
        }

        _logger = logger;
        _timer = time.CreateTimer(_ => ReloadChanged(), null, _options.CredentialCheckInterval, _options.CredentialCheckInterval);
    }

    /// <summary>Reloads whichever files changed since the last look; returns whether anything was taken.</summary>
    internal bool ReloadChanged()
    {
        if (_options is null)
        {
            return false;
        }

        lock (_reloadLock)
        {
            try
            {
                return ReloadChangedLocked(_options);
            }
            catch (Exception ex)
            {
                // The timer must survive anything one look throws.
                if (_logger is not null)
                {
                    EdgeLog.CredentialFileReloadFailed(_logger, "the edge's credential files", ex.Message);
                }

                return false;
            }
        }
    }

    private bool ReloadChangedLocked(EdgeOptions options)
    {
        var state = _state;
        var trustChanged = false;
        var taken = false;
        if (Changed(options.ServerCertificatePath!) | Changed(options.ServerKeyPath!))
        {
            try
            {
                var server = CertificateIssuer.LoadPem(options.ServerCertificatePath!, options.ServerKeyPath!);
                state = state with { ServerCertificate = server, ServerContext = SslStreamCertificateContext.Create(server, additionalCertificates: null, offline: true) };
                Log(l => EdgeLog.CredentialFileReloaded(l, options.ServerCertificatePath!, $"server certificate {server.Subject}, serial {server.SerialNumber}, valid until {server.NotAfter.ToUniversalTime():u}; new handshakes use it"));
                taken = true;
            }
            catch (InvalidOperationException ex)
            {
                Forget(options.ServerCertificatePath!);
                Log(l => EdgeLog.CredentialFileReloadFailed(l, options.ServerCertificatePath!, ex.Message));
            }
        }

        if (Changed(options.CaCertificatePath!))
        {
            try
            {
                var cas = LoadCas(options.CaCertificatePath!);
                state = state with { TrustedCas = cas };
                trustChanged = taken = true;
                Log(l => EdgeLog.CredentialFileReloaded(l, options.CaCertificatePath!, $"{cas.Count} trusted CA(s): {string.Join(", ", cas.Select(c => c.Subject))}"));
            }
            catch (InvalidOperationException ex)
            {
                Forget(options.CaCertificatePath!);
                Log(l => EdgeLog.CredentialFileReloadFailed(l, options.CaCertificatePath!, ex.Message));
            }
        }

        if (options.RevocationListPath is { Length: > 0 } revocationPath && Changed(revocationPath))
        {
            try
            {
                var revocations = RevocationList.Load(revocationPath);
                _fileRevocations = revocations;
                state = state with { Revocations = Union(revocations, _clusterRevocations) };
                trustChanged = taken = true;
                Log(l => EdgeLog.CredentialFileReloaded(l, revocationPath, $"{revocations.Entries.Count} revoked credential(s)"));
            }
            catch (InvalidOperationException ex)
            {
                Forget(revocationPath);
                Log(l => EdgeLog.CredentialFileReloadFailed(l, revocationPath, ex.Message));
            }
        }

        _state = state;
        if (trustChanged)
        {
            TrustChanged?.Invoke();
        }

        return taken;
    }

    /// <summary>Replaces the revocation list at once (the admin API wrote the file) and checks live connections.</summary>
    internal void UseRevocations(RevocationList revocations)
    {
        ArgumentNullException.ThrowIfNull(revocations);
        lock (_reloadLock)
        {
            _fileRevocations = revocations;
            _state = _state with { Revocations = Union(revocations, _clusterRevocations) };
            if (_options?.RevocationListPath is { Length: > 0 } path)
            {
                _stamps[path] = Stamp(path);
            }
        }

        TrustChanged?.Invoke();
    }

    /// <summary>
    /// Replaces the revocations learnt from the cluster (every edge's, published through the store) and,
    /// when their ids changed, checks live connections; returns how many ids this edge did not hold yet.
    /// </summary>
    internal int UseClusterRevocations(RevocationList revocations)
    {
        ArgumentNullException.ThrowIfNull(revocations);
        int added;
        lock (_reloadLock)
        {
            var changed = revocations.Entries.Count != _clusterRevocations.Entries.Count || revocations.Entries.Any(e => _clusterRevocations.Find(e.Id) is null);
            if (!changed)
            {
                return 0;
            }

            // New to this edge: its own revocations come back from the cluster too.
            added = revocations.Entries.Count(e => _state.Revocations.Find(e.Id) is null);

            _clusterRevocations = revocations;
            _state = _state with { Revocations = Union(_fileRevocations, revocations) };
        }

        TrustChanged?.Invoke();
        return added;
    }

    // The file's entry wins for an id in both: it is this edge's own record.
    private static RevocationList Union(RevocationList file, RevocationList cluster) =>
        cluster.Entries.Count == 0 ? file : new RevocationList([.. cluster.Entries, .. file.Entries]);

    /// <inheritdoc />
    public void Dispose() => _timer?.Dispose();

    private void Log(Action<ILogger> write)
    {
        if (_logger is not null)
        {
            write(_logger);
        }
    }

    private void RecordStamps()
    {
        foreach (var path in new[] { _options!.ServerCertificatePath!, _options.ServerKeyPath!, _options.CaCertificatePath!, _options.RevocationListPath })
        {
            if (path is { Length: > 0 })
            {
                _stamps[path] = Stamp(path);
            }
        }
    }

    private bool Changed(string path)
    {
        var stamp = Stamp(path);
        if (_stamps.TryGetValue(path, out var seen) && seen == stamp)
        {
            return false;
        }

        _stamps[path] = stamp;
        return true;
    }

    // A failed load is tried again on the next look, even if the file does not change again.
    private void Forget(string path) => _stamps.Remove(path);

    private static (DateTime, long) Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1);
    }

    private static X509Certificate2Collection LoadCas(string path)
    {
        var cas = new X509Certificate2Collection();
        try
        {
            cas.ImportFromPemFile(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new InvalidOperationException($"Cannot load the CA file '{path}': {ex.Message}", ex);
        }

        if (cas.Count == 0)
        {
            throw new InvalidOperationException($"The CA file '{path}' holds no certificate; the edge needs at least one CA to accept origins.");
        }

        return cas;
    }

    private static State Check(X509Certificate2 serverCertificate, X509Certificate2Collection trustedCas, RevocationList revocations)
    {
        ArgumentNullException.ThrowIfNull(serverCertificate);
        ArgumentNullException.ThrowIfNull(trustedCas);
        if (!serverCertificate.HasPrivateKey)
        {
            throw new InvalidOperationException("The edge's server certificate has no private key.");
        }

        if (trustedCas.Count == 0)
        {
            throw new InvalidOperationException("The edge needs at least one CA certificate to accept origins.");
        }

        return new State(serverCertificate, SslStreamCertificateContext.Create(serverCertificate, additionalCertificates: null, offline: true), trustedCas, revocations);
    }

    private sealed record State(X509Certificate2 ServerCertificate, SslStreamCertificateContext ServerContext, X509Certificate2Collection TrustedCas, RevocationList Revocations);
}

/// <summary>Why a credential may not serve.</summary>
/// <param name="Revoked">Whether it was revoked (else its chain no longer validates, e.g. its CA was retired).</param>
/// <param name="Message">The reason, for logs and the origin's refusal.</param>
internal sealed record CredentialProblem(bool Revoked, string Message);
