using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Telemetry;
using Tunnel.Edge.Visitors.Passthrough;
using Tunnel.Protocol;
using Tunnel.Protocol.Credentials;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// The registration exchange on a tunnel connection whose TLS handshake is done: reads the origin's
/// request, authorizes it (protocol version, drain, revocation, hostnames its certificate covers, the
/// tenant's policy, the edge's cap) and answers; refuses a connection whose certificate failed. Holds
/// the count of tunnel places, and trims memory once a burst of registrations is over.
/// </summary>
internal sealed class TunnelRegistrar
{
    // An overloaded edge asks origins to stay away this long; they try other edges meanwhile.
    private const int OverloadedRetryAfterSeconds = 5;

    // Long enough for a registration already on its way to arrive; short enough that a refused client
    // that sends nothing holds its socket only a moment longer.
    private static readonly TimeSpan RefusedDiscardTime = TimeSpan.FromSeconds(1);

    private const int DiscardBufferBytes = 1024;

    // A few origins (re)connecting leave little behind; a hundred handshakes leave megabytes, worth one
    // pause of the process to give back.
    private const int TrimAfterRegistrations = 100;

    // The dials of a reconnect storm (an edge restart, origins redialing together) come within a
    // second or two of each other; after 2 s without one the storm is over. A storm that trickles on
    // longer is trimmed again later, each time after another hundred registrations.
    private static readonly TimeSpan TrimQuietPeriod = TimeSpan.FromSeconds(2);

    private readonly EdgeOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly EdgeCredentials _credentials;
    private readonly EdgeConnectionEvents _events;
    private readonly RegistrationPolicy _policy;
    private readonly TunnelWithdrawals _withdrawals;
    private readonly ConnectionModePolicy _connectionModes;
    private volatile bool _draining;
    private long _nextConnectionNumber;
    private int _places;
    private int _registrationsSinceTrim;
    private long _lastRegistration;

    public TunnelRegistrar(EdgeOptions options, ILogger logger, TimeProvider time, EdgeCredentials credentials, EdgeConnectionEvents events, RegistrationPolicy policy, TunnelWithdrawals withdrawals, ConnectionModePolicy connectionModes)
    {
        _connectionModes = connectionModes;
        _options = options;
        _logger = logger;
        _time = time;
        _credentials = credentials;
        _events = events;
        _policy = policy;
        _withdrawals = withdrawals;
    }

    /// <summary>The public key of the edge's identity assertions, sent to origins; <c>null</c> when no route has sign-in.</summary>
    public string? IdentityKey { get; init; }

    /// <summary>Tunnel connections holding a place: registered, or accepted and about to be.</summary>
    public int Places => Volatile.Read(ref _places);

    /// <summary>Refuse new registrations from now on (the edge is shutting down).</summary>
    public void StartDraining() => _draining = true;

    /// <summary>A registered connection closed: its place is free.</summary>
    public void ReleasePlace() => Interlocked.Decrement(ref _places);

    /// <summary>
    /// Reads the origin's registration and answers it: a connection holding a place, or <c>null</c>
    /// once the refusal was sent (or the origin went silent). The caller serves the connection and
    /// gives its place back with <see cref="ReleasePlace"/> when it closes.
    /// </summary>
    public async Task<TunnelConnection?> RegisterAsync(SslStream ssl, X509Certificate2 clientCertificate, EndPoint? remoteEndPoint, string remote, CancellationToken stoppingToken)
    {
        RegistrationRequest request;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            timeout.CancelAfter(_options.RegistrationTimeout);
            try
            {
                request = await RegistrationCodec.ReadRequestAsync(ssl, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
                EdgeLog.RegistrationRefused(_logger, remote, RejectionCodes.InvalidRegistration, $"no registration within {_options.RegistrationTimeout.TotalSeconds:0.#} s");
                _events.Refused(remote, RejectionCodes.InvalidRegistration, $"no registration within {_options.RegistrationTimeout.TotalSeconds:0.#} s");
                return null;
            }
            catch (RegistrationProtocolException ex)
            {
                await RejectAsync(ssl, remote, new RegistrationRejected { Code = RejectionCodes.InvalidRegistration, Message = ex.Message }, stoppingToken).ConfigureAwait(false);
                return null;
            }
        }

        var rejection = Authorize(request, clientCertificate, out var hostnames, out var connectionRoutes);
        if (rejection is not null)
        {
            await RejectAsync(ssl, remote, rejection, stoppingToken).ConfigureAwait(false);
            return null;
        }

        // The tenant's caps and claims before the edge's: a credential over its own cap takes no place of the others'.
        if (!_policy.TryAdmit(clientCertificate, [.. hostnames, .. connectionRoutes.Select(r => r.Hostname).Except(hostnames)], remote, out var lease, out var refused))
        {
            await RejectAsync(ssl, remote, refused, stoppingToken).ConfigureAwait(false);
            return null;
        }

        // Take a place atomically: registrations arriving together must not all see room for one more.
        if (Interlocked.Increment(ref _places) > _options.MaxTunnelConnections)
        {
            Interlocked.Decrement(ref _places);
            lease.Dispose();
            await RejectAsync(ssl, remote, new RegistrationRejected
            {
                Code = RejectionCodes.Overloaded,
                Message = $"Edge {_options.Name} holds its maximum of {_options.MaxTunnelConnections} tunnel connections.",
                Retryable = true,
                RetryAfterSeconds = OverloadedRetryAfterSeconds,
            }, stoppingToken).ConfigureAwait(false);
            return null;
        }

        var connectionId = $"{_options.Name}-{Interlocked.Increment(ref _nextConnectionNumber)}";
        var connection = new TunnelConnection(connectionId, request.ConnectorId, request.ConnectionIndex, hostnames, remoteEndPoint, ssl, _options, _time, TunnelCredential.IdOf(clientCertificate), connectionRoutes);
        var accepted = new RegistrationAccepted { ConnectionId = connectionId, EdgeName = _options.Name, Region = _options.Region, IdentityKey = IdentityKey };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            timeout.CancelAfter(_options.RegistrationTimeout);
            await RegistrationCodec.WriteResponseAsync(ssl, RegistrationResponse.Accept(accepted), timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _places);
            lease.Dispose();
            throw;
        }

        lease.ReleaseWhenClosed(connection);

        Volatile.Write(ref _lastRegistration, _time.GetTimestamp());
        Interlocked.Increment(ref _registrationsSinceTrim);
        EdgeLog.TunnelRegistered(_logger, connectionId, remote, request.ConnectorId, request.ConnectionIndex, DescribeRoutes(hostnames, connectionRoutes), request.ClientVersion);
        _events.Registered(connection);
        MoveOffClaimedNames(connection);
        return connection;
    }

    /// <summary>
    /// When <paramref name="claimant"/> claims names exclusively, the connections of other credentials
    /// that registered them before the claim was known here take no new request and close after the
    /// revocation grace; their origins' redials are refused with the reason.
    /// </summary>
    private void MoveOffClaimedNames(TunnelConnection claimant)
    {
        foreach (var (displaced, reason) in _policy.Displaced(claimant))
        {
            _withdrawals.Withdraw(displaced, new CredentialProblem(false, reason));
        }
    }

    /// <summary>
    /// Refuses a connection whose client certificate failed validation. Nothing it sends can change the
    /// answer, so only the frame header is read (the announced body is never allocated, and a client that
    /// announces 64 KiB and sends nothing is answered at once); then the answer, then the body is read
    /// and thrown away through a small buffer for a moment, so the origin is not reset (unread bytes at
    /// the close) before it reads the answer.
    /// </summary>
    public async Task RefuseCertificateAsync(SslStream ssl, string remote, string problem, CancellationToken stoppingToken)
    {
        var announced = 0;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            timeout.CancelAfter(_options.RegistrationTimeout);
            try
            {
                announced = await RegistrationCodec.ReadRequestHeaderAsync(ssl, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RegistrationProtocolException or IOException or OperationCanceledException)
            {
                // Whatever it sent, the certificate is the reason.
            }
        }

        await RejectAsync(ssl, remote, new RegistrationRejected { Code = RejectionCodes.CertificateRefused, Message = problem }, stoppingToken).ConfigureAwait(false);
        await DiscardAsync(ssl, announced, stoppingToken).ConfigureAwait(false);
    }

    private static async Task DiscardAsync(Stream stream, int announced, CancellationToken stoppingToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(RefusedDiscardTime);
        var buffer = new byte[Math.Min(announced, DiscardBufferBytes)];
        try
        {
            for (var left = announced; left > 0;)
            {
                var read = await stream.ReadAsync(buffer.AsMemory(0, Math.Min(left, buffer.Length)), timeout.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    return;
                }

                left -= read;
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Gone or silent: either way the answer was sent.
        }
    }

    private static string DescribeRoutes(IReadOnlyList<string> hostnames, IReadOnlyList<ConnectionRoute> connectionRoutes) =>
        string.Join(",", hostnames.Concat(connectionRoutes.Select(r => $"{r.Hostname} ({ConnectionRouteMetrics.Name(r.Mode)})")));

    /// <summary>Normalizes the connection routes asked for and checks each mode is allowed on this edge for its hostname.</summary>
    private RegistrationRejected? AuthorizeConnectionRoutes(RegistrationRequest request, out List<ConnectionRoute> routes)
    {
        routes = [];
        foreach (var requested in request.Connections ?? [])
        {
            if (!HostnameRules.TryNormalize(requested.Hostname, out var hostname, out var error))
            {
                return new RegistrationRejected { Code = RejectionCodes.InvalidRegistration, Message = $"Invalid hostname: {error}." };
            }

            if (_connectionModes.Refuse(hostname, requested.Mode) is { } refused)
            {
                return new RegistrationRejected { Code = RejectionCodes.ConnectionModeNotAllowed, Message = refused };
            }

            routes.Add(requested with { Hostname = hostname });
        }

        return null;
    }

    private RegistrationRejected? Authorize(RegistrationRequest request, X509Certificate2 certificate, out IReadOnlyList<string> hostnames, out IReadOnlyList<ConnectionRoute> connectionRoutes)
    {
        hostnames = [];
        connectionRoutes = [];
        if (request.Version != TunnelProtocol.Version)
        {
            return new RegistrationRejected { Code = RejectionCodes.UnsupportedVersion, Message = $"This edge speaks protocol version {TunnelProtocol.Version}, not {request.Version}." };
        }

        if (_draining)
        {
            return new RegistrationRejected { Code = RejectionCodes.EdgeDraining, Message = $"Edge {_options.Name} is shutting down; use another edge.", Retryable = true };
        }

        if (_credentials.Revocations.Find(TunnelCredential.IdOf(certificate)) is { } revoked)
        {
            return new RegistrationRejected
            {
                Code = RejectionCodes.CredentialRevoked,
                Message = $"The credential {revoked.Id} ({certificate.Subject}) was revoked on {revoked.RevokedAt:u}{(revoked.Reason.Length > 0 ? ": " + revoked.Reason : "")}; ask the edge's operator for a new one.",
            };
        }

        var names = new List<string>();
        foreach (var requested in request.Hostnames)
        {
            if (!HostnameRules.TryNormalize(requested, out var hostname, out var error))
            {
                return new RegistrationRejected { Code = RejectionCodes.InvalidRegistration, Message = $"Invalid hostname: {error}." };
            }

            names.Add(hostname);
        }

        if (AuthorizeConnectionRoutes(request, out var routes) is { } refusedRoute)
        {
            return refusedRoute;
        }

        IReadOnlyList<string> certificateNames;
        using (var probe = TunnelListener.Probe(certificate))
        {
            certificateNames = CertificateIssuer.GetDnsNames(probe);
        }
        foreach (var hostname in names.Concat(routes.Select(r => r.Hostname)))
        {
            if (!certificateNames.Any(pattern => HostnameRules.IsCoveredBy(hostname, pattern)))
            {
                var covered = certificateNames.Count == 0 ? "no DNS name" : string.Join(", ", certificateNames);
                return new RegistrationRejected
                {
                    Code = RejectionCodes.HostnameNotAuthorized,
                    Message = $"The origin certificate ({certificate.Subject}) covers {covered}; it does not cover '{hostname}'.",
                };
            }
        }

        hostnames = names.Distinct().ToArray();
        connectionRoutes = routes.Distinct().ToArray();
        return null;
    }

    private async Task RejectAsync(SslStream ssl, string remote, RegistrationRejected rejection, CancellationToken stoppingToken)
    {
        EdgeLog.RegistrationRefused(_logger, remote, rejection.Code, rejection.Message);
        _events.Refused(remote, rejection.Code, rejection.Message);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(_options.RegistrationTimeout);
        try
        {
            await RegistrationCodec.WriteResponseAsync(ssl, RegistrationResponse.Reject(rejection), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The origin is gone already; the refusal is logged.
        }
    }

    /// <summary>
    /// Once a burst of registrations is over, gives back what its handshakes left behind (see
    /// <see cref="MemoryTrim"/>): with no registration for <see cref="TrimQuietPeriod"/> after at least
    /// <see cref="TrimAfterRegistrations"/> since the last trim.
    /// </summary>
    public void TrimAfterRegistrationBurst()
    {
        if (Volatile.Read(ref _registrationsSinceTrim) < TrimAfterRegistrations
            || _time.GetElapsedTime(Volatile.Read(ref _lastRegistration)) < TrimQuietPeriod)
        {
            return;
        }

        var registrations = Interlocked.Exchange(ref _registrationsSinceTrim, 0);
        var (before, after, took) = MemoryTrim.Run();
        EdgeLog.MemoryTrimmed(_logger, registrations, before / (1024.0 * 1024), after / (1024.0 * 1024), took.TotalMilliseconds);
    }
}
