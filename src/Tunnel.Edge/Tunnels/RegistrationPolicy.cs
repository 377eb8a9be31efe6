using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Protocol;
using Tunnel.Protocol.Credentials;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// The tenant rules of a registration, after its certificate was found to cover its hostnames: the
/// caps per credential (<see cref="EdgeOptions.MaxHostnamesPerRegistration"/>,
/// <see cref="EdgeOptions.MaxTunnelConnectionsPerCredential"/>), so one credential cannot take every
/// tunnel place from the others, and exclusive claims (<see cref="ExclusiveClaim"/>): a name claimed
/// by a credential is refused to every credential that does not claim it too.
/// </summary>
/// <remarks>
/// Claims are learned from the certificates that connect (kept until they expire) and, when
/// <see cref="EdgeOptions.CredentialRegistryPath"/> is set, from the issuing registry, so a claim holds
/// before its credential first connects. A credential is its certificate's serial, as for revocation.
/// </remarks>
internal sealed class RegistrationPolicy
{
    // Places free up as a credential's connections close (redeploys, redials); sooner than this
    // would have an over-cap fleet of replicas hammering the edge.
    private const int CredentialLimitRetryAfterSeconds = 30;

    private readonly EdgeOptions _options;
    private readonly RouteTable _routes;
    private readonly EdgeCredentials _credentials;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, int> _connections = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _connectionsLock = new();
    // Every credential that registered here, for its claim and the overlap warnings: as many as the
    // operator's CA issued (each passed the TLS handshake and the certificate's name check).
    private readonly ConcurrentDictionary<string, IssuedCredential> _seen = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _registryLock = new();
    private (DateTime Written, long Length) _registryStamp = (DateTime.MinValue, -1);
    private IReadOnlyList<IssuedCredential> _registry = [];
    private FrozenDictionary<string, IssuedCredential[]> _claims = FrozenDictionary<string, IssuedCredential[]>.Empty;

    /// <summary>Creates the policy; the registry, when configured, is read at the first registration.</summary>
    public RegistrationPolicy(EdgeOptions options, RouteTable routes, EdgeCredentials credentials, TimeProvider time, ILogger<RegistrationPolicy> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(routes);
        ArgumentNullException.ThrowIfNull(credentials);
        _options = options;
        _routes = routes;
        _credentials = credentials;
        _time = time;
        _logger = logger;

        // A revoked claimant's claim no longer keeps its names from wildcard routes.
        _credentials.TrustChanged += RebuildClaims;
    }

    /// <summary>
    /// Decides a registration of <paramref name="hostnames"/> (normalized, authorized by the certificate):
    /// a place counted against the credential until <paramref name="lease"/> is released, or the refusal.
    /// </summary>
    public bool TryAdmit(X509Certificate2 certificate, IReadOnlyList<string> hostnames, string remote,
        [NotNullWhen(true)] out CredentialLease? lease, [NotNullWhen(false)] out RegistrationRejected? refused)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(hostnames);
        lease = null;
        var credential = Learn(certificate);
        if (hostnames.Count > _options.MaxHostnamesPerRegistration)
        {
            EdgeLog.CredentialHostnameLimitReached(_logger, remote, credential.Id, hostnames.Count, _options.MaxHostnamesPerRegistration);
            refused = new RegistrationRejected
            {
                Code = RejectionCodes.CredentialLimit,
                Message = $"The registration names {hostnames.Count} hostnames; edge {_options.Name} takes at most {_options.MaxHostnamesPerRegistration} per registration (MaxHostnamesPerRegistration).",
            };
            return false;
        }

        refused = RefuseClaimed(credential, hostnames, remote);
        if (refused is not null)
        {
            return false;
        }

        lock (_connectionsLock)
        {
            var held = _connections.GetValueOrDefault(credential.Id);
            if (held >= _options.MaxTunnelConnectionsPerCredential)
            {
                EdgeLog.CredentialConnectionLimitReached(_logger, remote, credential.Id, held, _options.MaxTunnelConnectionsPerCredential);
                refused = new RegistrationRejected
                {
                    Code = RejectionCodes.CredentialLimit,
                    Message = $"The credential {credential.Id} ({certificate.Subject}) holds {held} tunnel connections on edge {_options.Name}, its maximum per credential (MaxTunnelConnectionsPerCredential); close some or ask the operator for another credential.",
                    Retryable = true,
                    RetryAfterSeconds = CredentialLimitRetryAfterSeconds,
                };
                return false;
            }

            _connections[credential.Id] = held + 1;
        }

        lease = new CredentialLease(this, credential.Id);
        return true;
    }

    /// <summary>
    /// Live connections registered for a name that <paramref name="claimant"/>'s credential claims
    /// exclusively, whose own credentials do not claim it: they joined before the claim was known here
    /// (the claimant had not connected yet) and must move off, with the reason.
    /// </summary>
    public IReadOnlyList<(TunnelConnection Connection, string Reason)> Displaced(TunnelConnection claimant)
    {
        ArgumentNullException.ThrowIfNull(claimant);
        var claims = Volatile.Read(ref _claims);
        var displaced = new List<(TunnelConnection, string)>();
        foreach (var hostname in claimant.Hostnames)
        {
            if (!claims.TryGetValue(hostname, out var claimants)
                || !claimants.Any(c => string.Equals(c.Id, claimant.CredentialId, StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            foreach (var connection in _routes.ConnectionsFor(hostname).Where(c => !claimants.Any(k => string.Equals(k.Id, c.CredentialId, StringComparison.OrdinalIgnoreCase))))
            {
                displaced.Add((connection, $"{hostname} is claimed exclusively by credential {claimant.CredentialId}; credential {connection.CredentialId} may no longer serve it"));
            }
        }

        return displaced;
    }

    /// <summary>
    /// The credentials that may serve now (registry entries and certificates seen, not revoked, not
    /// expired) whose hostnames overlap, for the status page.
    /// </summary>
    public IReadOnlyList<CredentialOverlap> Overlaps()
    {
        RefreshRegistry();
        return CredentialOverlaps.Find(Current());
    }

    /// <summary>Tunnel connections the credential holds on this edge now.</summary>
    public int ConnectionsOf(string credentialId)
    {
        lock (_connectionsLock)
        {
            return _connections.GetValueOrDefault(credentialId);
        }
    }

    private RegistrationRejected? RefuseClaimed(IssuedCredential credential, IReadOnlyList<string> hostnames, string remote)
    {
        var claims = Volatile.Read(ref _claims);
        foreach (var hostname in hostnames)
        {
            if (!claims.TryGetValue(hostname, out var claimants) || claimants.Any(c => string.Equals(c.Id, credential.Id, StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            var live = claimants.Where(MayServe).ToArray();
            if (live.Length == 0)
            {
                continue;
            }

            var names = string.Join(", ", live.Select(CredentialOverlaps.Describe));
            EdgeLog.HostnameClaimRefused(_logger, remote, credential.Id, hostname, names);
            return new RegistrationRejected
            {
                Code = RejectionCodes.HostnameClaimed,
                Message = $"'{hostname}' is claimed exclusively by credential {names}; the credential {credential.Id} covers it{(credential.Hostnames.Contains(hostname) ? "" : " by a wildcard")} but may not register it.",
            };
        }

        return null;
    }

    /// <summary>Remembers a certificate that registered (its names and claim) and reads the registry if it changed.</summary>
    private IssuedCredential Learn(X509Certificate2 certificate)
    {
        RefreshRegistry();
        var id = TunnelCredential.IdOf(certificate);
        if (_seen.TryGetValue(id, out var known))
        {
            return known;
        }

        IReadOnlyList<string> names;
        IReadOnlyList<string> claimed;
        using (var probe = new X509Certificate2(certificate))
        {
            names = CertificateIssuer.GetDnsNames(probe);
            claimed = ExclusiveClaim.Read(probe);
        }

        var label = _registry.FirstOrDefault(c => string.Equals(c.Id, id, StringComparison.OrdinalIgnoreCase))?.Label ?? "";
        var credential = new IssuedCredential(id, label, names, certificate.Issuer, new DateTimeOffset(certificate.NotBefore.ToUniversalTime()),
            new DateTimeOffset(certificate.NotBefore.ToUniversalTime()), new DateTimeOffset(certificate.NotAfter.ToUniversalTime()), claimed.Count > 0);
        if (_seen.TryAdd(id, credential) && credential.Exclusive)
        {
            RebuildClaims();
        }

        return credential;
    }

    /// <summary>Re-reads the registry when its file changed; a file that cannot be read keeps what was loaded.</summary>
    private void RefreshRegistry()
    {
        if (_options.CredentialRegistryPath is not { Length: > 0 } path)
        {
            return;
        }

        var info = new FileInfo(path);
        var stamp = info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1L);
        lock (_registryLock)
        {
            if (stamp == _registryStamp)
            {
                return;
            }

            _registryStamp = stamp;
            try
            {
                _registry = CredentialRegistry.Load(path);
                EdgeLog.CredentialFileReloaded(_logger, path, $"{_registry.Count} issued credential(s), {_registry.Count(c => c.Exclusive)} with exclusive claims");
            }
            catch (InvalidOperationException ex)
            {
                EdgeLog.CredentialFileReloadFailed(_logger, path, ex.Message);
                return;
            }
        }

        RebuildClaims();
    }

    private void RebuildClaims()
    {
        lock (_registryLock)
        {
            var claims = Current().Where(c => c.Exclusive)
                .SelectMany(c => c.Hostnames.Where(h => !h.StartsWith("*.", StringComparison.Ordinal)).Select(h => (Hostname: h.ToLowerInvariant(), Credential: c)))
                .GroupBy(p => p.Hostname, StringComparer.Ordinal)
                .ToFrozenDictionary(g => g.Key, g => g.Select(p => p.Credential).ToArray(), StringComparer.Ordinal);
            Volatile.Write(ref _claims, claims);
            _routes.UseExclusiveNames(claims.Keys);
        }
    }

    /// <summary>Every credential known here that may still serve: the registry's and the certificates seen, one entry per id.</summary>
    private IEnumerable<IssuedCredential> Current()
    {
        var registry = _registry;
        var registered = registry.Select(r => r.Id).ToHashSet(StringComparer.OrdinalIgnoreCase);
        return registry.Concat(_seen.Values.Where(s => !registered.Contains(s.Id))).Where(MayServe);
    }

    private bool MayServe(IssuedCredential credential) =>
        credential.NotAfter > _time.GetUtcNow() && _credentials.Revocations.Find(credential.Id) is null;

    private void Release(string credentialId)
    {
        lock (_connectionsLock)
        {
            var held = _connections.GetValueOrDefault(credentialId) - 1;
            if (held > 0)
            {
                _connections[credentialId] = held;
            }
            else
            {
                _connections.Remove(credentialId);
            }
        }
    }

    /// <summary>One tunnel place of a credential, given back once (by <see cref="Dispose"/> or when its connection closes).</summary>
    public sealed class CredentialLease : IDisposable
    {
        private readonly RegistrationPolicy _policy;
        private readonly string _credentialId;
        private int _released;

        internal CredentialLease(RegistrationPolicy policy, string credentialId)
        {
            _policy = policy;
            _credentialId = credentialId;
        }

        /// <summary>Gives the place back when <paramref name="connection"/> closes.</summary>
        public void ReleaseWhenClosed(TunnelConnection connection)
        {
            ArgumentNullException.ThrowIfNull(connection);
            _ = connection.Closed.ContinueWith(static (_, lease) => ((CredentialLease)lease!).Dispose(), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        /// <inheritdoc />
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _policy.Release(_credentialId);
            }
        }
    }
}
