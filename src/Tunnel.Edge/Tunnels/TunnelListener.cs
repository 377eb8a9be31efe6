using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;
using Tunnel.Protocol;
using Tunnel.Protocol.Credentials;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// The tunnel port: accepts origins' TCP connections, runs the TLS handshake (client certificate from
/// the edge's CA, ALPN <c>tunnel/1</c>), the registration exchange, and puts accepted connections in the
/// route table until they close.
/// </summary>
internal sealed class TunnelListener : BackgroundService, IHostedLifecycleService
{
    private readonly EdgeOptions _options;
    private readonly RouteTable _routes;
    private readonly EdgeConnectionEvents _events;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly EdgeCredentials _credentials;
    private readonly RegistrationPolicy _policy;
    private readonly ConcurrentDictionary<TunnelConnection, X509Certificate2> _certificates = new();

    // When each served connection's certificate expires (read once: the heartbeat check compares these).
    private readonly ConcurrentDictionary<TunnelConnection, DateTimeOffset> _expiries = new();
    private readonly HandshakeGate _handshakes;
    private readonly EdgeMetrics _metrics;

    // The connections being served, for the heartbeat check twice a second: walking this costs nothing,
    // where the route table's distinct copy of every connection was garbage of kilobytes per check.
    private readonly ConcurrentDictionary<TunnelConnection, byte> _served = new();
    private readonly Socket _socket;
    private volatile bool _draining;
    private long _nextConnectionNumber;
    private int _tunnelPlaces;
    private int _registrationsSinceTrim;
    private long _lastRegistration;

    // An overloaded edge asks origins to stay away this long; they try other edges meanwhile.
    private const int OverloadedRetryAfterSeconds = 5;

    /// <summary>Creates the listener and binds its port at once, so a taken port fails the start.</summary>
    public TunnelListener(EdgeOptions options, RouteTable routes, ILogger<TunnelListener> logger, TimeProvider time, EdgeCredentials credentials, EdgeConnectionEvents events, EdgeMetrics metrics, RegistrationPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(policy);
        _metrics = metrics;
        _handshakes = new HandshakeGate(options, metrics, logger, time);
        _policy = policy;
        _options = options;
        _routes = routes;
        _events = events;
        _logger = logger;
        _time = time;
        _credentials = credentials;
        _credentials.TrustChanged += CheckLiveCredentials;

        var address = IPAddress.Parse(options.TunnelAddress);
        _socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (address.Equals(IPAddress.IPv6Any))
        {
            _socket.DualMode = true;
        }

        _socket.Bind(new IPEndPoint(address, options.TunnelPort));
        _socket.Listen(512);
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    /// <summary>The bound tunnel endpoint (with the real port when 0 was asked).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Tunnel connections holding a place: registered, or accepted and about to be (tests check none leak).</summary>
    internal int TunnelPlaces => Volatile.Read(ref _tunnelPlaces);

    /// <summary>Connections accepted and not yet registered (tests check the cap holds and none leak).</summary>
    internal int HandshakesInFlight => _handshakes.InFlight;

    /// <summary>Refuse new registrations from now on (the edge is shutting down).</summary>
    public void StartDraining() => _draining = true;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        EdgeLog.TunnelListening(_logger, EndPoint.ToString());
        _credentials.StartWatching(_logger, _time);
        var heartbeats = WatchHeartbeatsAsync(stoppingToken);
        using var registration = stoppingToken.Register(() => _socket.Dispose());
        while (!stoppingToken.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await _socket.AcceptAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset or SocketError.TooManyOpenSockets)
            {
                // One failed accept must not stop the listener; back off briefly on descriptor exhaustion.
                if (ex.SocketErrorCode == SocketError.TooManyOpenSockets)
                {
                    await Task.Delay(100, stoppingToken).ConfigureAwait(false);
                }

                continue;
            }

            if (_handshakes.TryEnter(accepted.RemoteEndPoint) is not { } admission)
            {
                // Over a cap: a reset, not a close, so not even TIME_WAIT is kept for it.
                try
                {
                    accepted.LingerState = new LingerOption(true, 0);
                }
                catch (SocketException)
                {
                    // Reset by the client already.
                }

                accepted.Dispose();
                continue;
            }

            accepted.NoDelay = true;
            _ = Task.Run(() => HandleAsync(accepted, admission, stoppingToken), CancellationToken.None);
        }

        await heartbeats.ConfigureAwait(false);
    }

    /// <summary>
    /// The first step of the edge's shutdown, before the visitor listener stops: refuse new tunnels,
    /// ask every connected origin to move to another edge, and keep serving through the existing
    /// tunnels until the origins have closed them (they do once their replacements are registered)
    /// or <see cref="EdgeOptions.DrainTimeout"/> passes.
    /// </summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        StartDraining();

        // Places, not the route table: a registration accepted a moment ago holds a place before its
        // connection is in the table, and must be moved too.
        if (Volatile.Read(ref _tunnelPlaces) == 0)
        {
            return;
        }

        EdgeLog.Draining(_logger, Volatile.Read(ref _tunnelPlaces), _options.DrainTimeout.TotalSeconds);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.DrainTimeout);
        try
        {
            // Registrations that were under way when draining began land here too, so look again
            // until every place is given back rather than waiting on one snapshot.
            while (Volatile.Read(ref _tunnelPlaces) > 0)
            {
                foreach (var connection in _routes.Connections())
                {
                    connection.RequestMove();
                }

                await Task.Delay(DrainPollInterval, _time, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Whatever is still open closes with the listener.
        }
    }

    // Short enough that the edge exits moments after its last tunnel moved.
    private static readonly TimeSpan DrainPollInterval = TimeSpan.FromMilliseconds(50);

    /// <inheritdoc />
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        StartDraining();
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        foreach (var connection in _routes.Connections())
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _credentials.TrustChanged -= CheckLiveCredentials;
        _socket.Dispose();
        base.Dispose();
    }

    private async Task HandleAsync(Socket socket, HandshakeGate.Admission admission, CancellationToken stoppingToken)
    {
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        SslStream? ssl = null;
        try
        {
            string? certificateProblem = null;
            ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
            var authOptions = new SslServerAuthenticationOptions
            {
                // Read per handshake: a renewed server certificate or CA bundle applies from the next one on.
                ServerCertificateContext = _credentials.ServerCertificateContext,
                ClientCertificateRequired = true,
                ApplicationProtocols = [new SslApplicationProtocol(TunnelProtocol.Alpn)],
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                CertificateChainPolicy = _credentials.CreateClientChainPolicy(),
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                {
                    if (errors != SslPolicyErrors.None)
                    {
                        certificateProblem = DescribeCertificateProblem(certificate, chain, errors);
                    }
                    else if (certificate is X509Certificate2 presented && IsEdgeCertificate(presented))
                    {
                        // Edges' certificates carry client authentication too (they dial their peers in
                        // a cluster); an edge never registers as an origin, so its names never route here.
                        certificateProblem = $"the certificate ({presented.Subject}) is an edge's certificate (issued for server authentication); only origin certificates can register";
                    }

                    // A TLS alert would reach the origin only as "connection closed" (with TLS 1.3 the
                    // client's side of the handshake is done before the edge checks its certificate),
                    // so the handshake completes and the refusal travels as a registration rejection
                    // the origin can log. Nothing but that rejection is ever sent on such a connection.
                    return true;
                },
            };

            using (var handshakeTimeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
            {
                handshakeTimeout.CancelAfter(_options.TlsHandshakeTimeout);
                try
                {
                    await ssl.AuthenticateAsServerAsync(authOptions, handshakeTimeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                {
                    EdgeLog.HandshakeFailed(_logger, remote, $"no TLS handshake within {_options.TlsHandshakeTimeout.TotalSeconds:0.#} s");
                    return;
                }
                catch (Exception ex) when (ex is AuthenticationException or IOException)
                {
                    EdgeLog.HandshakeFailed(_logger, remote, certificateProblem ?? DescribeHandshakeFailure(ex));
                    return;
                }
            }

            if (ssl.NegotiatedApplicationProtocol.ToString() != TunnelProtocol.Alpn)
            {
                EdgeLog.HandshakeFailed(_logger, remote, $"the client did not offer ALPN '{TunnelProtocol.Alpn}'");
                return;
            }

            if (_options.ReleaseIdleTlsBuffers && !TlsBufferRelease.TryApply(ssl, out var releaseProblem) && releaseProblem is not null)
            {
                EdgeLog.TlsBufferReleaseUnavailable(_logger, releaseProblem);
            }

            using var clientCertificate = ssl.RemoteCertificate is { } presented ? new X509Certificate2(presented) : null;
            if (certificateProblem is not null || clientCertificate is null)
            {
                await RefuseCertificateAsync(ssl, remote, certificateProblem ?? "the origin presented no client certificate", stoppingToken).ConfigureAwait(false);
                return;
            }

            var connection = await RegisterAsync(ssl, clientCertificate, socket.RemoteEndPoint, remote, stoppingToken).ConfigureAwait(false);
            if (connection is null)
            {
                return;
            }

            ssl = null; // The connection owns the stream now.
            admission.Dispose();
            await ServeAsync(connection, clientCertificate).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
            EdgeLog.HandshakeFailed(_logger, remote, ex.Message);
        }
        catch (Exception ex)
        {
            EdgeLog.ListenerFault(_logger, ex);
        }
        finally
        {
            admission.Dispose();
            if (ssl is not null)
            {
                await ssl.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task<TunnelConnection?> RegisterAsync(SslStream ssl, X509Certificate2 clientCertificate, EndPoint? remoteEndPoint, string remote, CancellationToken stoppingToken)
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

        var rejection = Authorize(request, clientCertificate, out var hostnames);
        if (rejection is not null)
        {
            await RejectAsync(ssl, remote, rejection, stoppingToken).ConfigureAwait(false);
            return null;
        }

        // The tenant's caps and claims before the edge's: a credential over its own cap takes no place of the others'.
        if (!_policy.TryAdmit(clientCertificate, hostnames, remote, out var lease, out var refused))
        {
            await RejectAsync(ssl, remote, refused, stoppingToken).ConfigureAwait(false);
            return null;
        }

        // Take a place atomically: registrations arriving together must not all see room for one more.
        if (Interlocked.Increment(ref _tunnelPlaces) > _options.MaxTunnelConnections)
        {
            Interlocked.Decrement(ref _tunnelPlaces);
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
        var connection = new TunnelConnection(connectionId, request.ConnectorId, request.ConnectionIndex, hostnames, remoteEndPoint, ssl, _options, _time, TunnelCredential.IdOf(clientCertificate));
        var accepted = new RegistrationAccepted { ConnectionId = connectionId, EdgeName = _options.Name, Region = _options.Region };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            timeout.CancelAfter(_options.RegistrationTimeout);
            await RegistrationCodec.WriteResponseAsync(ssl, RegistrationResponse.Accept(accepted), timeout.Token).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _tunnelPlaces);
            lease.Dispose();
            throw;
        }

        lease.ReleaseWhenClosed(connection);

        Volatile.Write(ref _lastRegistration, _time.GetTimestamp());
        Interlocked.Increment(ref _registrationsSinceTrim);
        EdgeLog.TunnelRegistered(_logger, connectionId, remote, request.ConnectorId, request.ConnectionIndex, string.Join(",", hostnames), request.ClientVersion);
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
            Withdraw(displaced, new CredentialProblem(false, reason));
        }
    }

    /// <summary>
    /// Refuses a connection whose client certificate failed validation. Nothing it sends can change the
    /// answer, so only the frame header is read (the announced body is never allocated, and a client that
    /// announces 64 KiB and sends nothing is answered at once); then the answer, then the body is read
    /// and thrown away through a small buffer for a moment, so the origin is not reset (unread bytes at
    /// the close) before it reads the answer.
    /// </summary>
    private async Task RefuseCertificateAsync(SslStream ssl, string remote, string problem, CancellationToken stoppingToken)
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

    // Long enough for a registration already on its way to arrive; short enough that a refused client
    // that sends nothing holds its socket only a moment longer.
    private static readonly TimeSpan RefusedDiscardTime = TimeSpan.FromSeconds(1);

    private const int DiscardBufferBytes = 1024;

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

    private RegistrationRejected? Authorize(RegistrationRequest request, X509Certificate2 certificate, out IReadOnlyList<string> hostnames)
    {
        hostnames = [];
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

        IReadOnlyList<string> certificateNames;
        using (var probe = Probe(certificate))
        {
            certificateNames = CertificateIssuer.GetDnsNames(probe);
        }
        foreach (var hostname in names)
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

    private async Task ServeAsync(TunnelConnection connection, X509Certificate2 clientCertificate)
    {
        connection.OriginFaulted += ReportOriginFault;
        _routes.Add(connection);
        _served[connection] = 0;
        _certificates[connection] = clientCertificate;
        _expiries[connection] = new DateTimeOffset(clientCertificate.NotAfter.ToUniversalTime());
        try
        {
            // A revocation seen between Authorize and now found no connection to close; look again.
            if (_credentials.Check(clientCertificate) is { } problem)
            {
                Withdraw(connection, problem);
            }

            // Open HTTP/2 now rather than on the first visitor's request, so keepalive PINGs watch the
            // tunnel from the start and a dead origin is found before a visitor is sent to it.
            await ProbeAsync(connection).ConfigureAwait(false);
            await connection.Closed.ConfigureAwait(false);
        }
        finally
        {
            _certificates.TryRemove(connection, out _);
            _expiries.TryRemove(connection, out _);
            _served.TryRemove(connection, out _);
            _routes.Remove(connection);
            Interlocked.Decrement(ref _tunnelPlaces);
            await connection.DisposeAsync().ConfigureAwait(false);
            EdgeLog.TunnelClosed(_logger, connection.Id, (_time.GetUtcNow() - connection.ConnectedAt).TotalSeconds);
            _events.Closed(connection);
        }
    }

    private void ReportOriginFault(TunnelConnection connection, string errorType, string reason)
    {
        EdgeLog.TunnelOriginFault(_logger, connection.Id, connection.ConnectorId, errorType, reason);
        _events.OriginFault(errorType);
    }

    private async Task ProbeAsync(TunnelConnection connection)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, TunnelConnection.RequestUriPrefix + TunnelHeaderNames.ProbePath)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new AnchorHeartbeatContent(connection.AnchorCancellation.Token),
        };
        request.Headers.Host = connection.Hostnames[0].TrimStart('*', '.');
        request.Headers.TryAddWithoutValidation(TunnelHeaderNames.Probe, "1");
        HttpResponseMessage anchor;
        using (var timeout = new CancellationTokenSource(_options.KeepAlivePingDelay + _options.KeepAlivePingTimeout))
        {
            try
            {
                anchor = await connection.Invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
            {
                request.Dispose();
                EdgeLog.HandshakeFailed(_logger, connection.Remote?.ToString() ?? "?", $"tunnel {connection.Id} did not answer its first HTTP/2 request: {ex.Message}");
                await connection.DisposeAsync().ConfigureAwait(false);
                return;
            }
        }

        _ = WatchAnchorAsync(connection, request, anchor);
    }

    /// <summary>
    /// Reads the anchor stream: each byte is the origin's heartbeat. A clean end means the origin is
    /// stopping (it drains), so the connection takes no new requests from that moment. Cancelling the
    /// read (the edge is draining) resets the stream, which the origin takes as "move elsewhere".
    /// </summary>
    private async Task WatchAnchorAsync(TunnelConnection connection, HttpRequestMessage request, HttpResponseMessage anchor)
    {
        connection.RecordHeartbeat(_time.GetTimestamp());
        using (request)
        using (anchor)
        {
            try
            {
                var body = await anchor.Content.ReadAsStreamAsync(connection.AnchorCancellation.Token).ConfigureAwait(false);
                var buffer = new byte[64];
                while (await body.ReadAsync(buffer, connection.AnchorCancellation.Token).ConfigureAwait(false) > 0)
                {
                    connection.RecordHeartbeat(_time.GetTimestamp());
                }

                connection.MarkDraining();
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                // Cancelled by our own drain (the connection keeps serving until the origin closes it),
                // or the connection failed (Closed reports that).
                if (!connection.AnchorCancellation.IsCancellationRequested)
                {
                    connection.MarkDraining();
                }
            }
        }
    }

    private async Task WatchHeartbeatsAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(HeartbeatCheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                foreach (var (connection, _) in _served)
                {
                    var wasSilent = connection.IsSilent;
                    if (connection.CheckHeartbeat(_time) && !wasSilent)
                    {
                        EdgeLog.TunnelSilent(_logger, connection.Id, TunnelLimits.AnchorSilenceLimit.TotalMilliseconds);
                    }
                }

                WithdrawExpired();
                TrimAfterRegistrationBurst();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // Checking twice per heartbeat keeps the reaction to silence within half a beat of the limit.
    private static readonly TimeSpan HeartbeatCheckInterval = TunnelLimits.AnchorHeartbeatInterval / 2;

    /// <summary>
    /// Once a burst of registrations is over, gives back what its handshakes left behind (see
    /// <see cref="MemoryTrim"/>): with no registration for <see cref="TrimQuietPeriod"/> after at least
    /// <see cref="TrimAfterRegistrations"/> since the last trim.
    /// </summary>
    private void TrimAfterRegistrationBurst()
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

    // A few origins (re)connecting leave little behind; a hundred handshakes leave megabytes, worth one
    // pause of the process to give back.
    private const int TrimAfterRegistrations = 100;

    // The dials of a reconnect storm (an edge restart, origins redialing together) come within a
    // second or two of each other; after 2 s without one the storm is over. A storm that trickles on
    // longer is trimmed again later, each time after another hundred registrations.
    private static readonly TimeSpan TrimQuietPeriod = TimeSpan.FromSeconds(2);

    /// <summary>
    /// After the revocation list or the CA bundle changed: every live connection whose credential may no
    /// longer serve takes no new request from now on, is asked to move, and is closed after
    /// <see cref="EdgeOptions.RevokedConnectionGrace"/> (its in-flight requests finish meanwhile).
    /// </summary>
    private void CheckLiveCredentials()
    {
        foreach (var (connection, certificate) in _certificates)
        {
            if (_credentials.Check(certificate) is { } problem)
            {
                Withdraw(connection, problem);
            }
        }
    }

    /// <summary>
    /// A certificate's <c>NotAfter</c> ends its tunnels as a revocation would: no new request from that
    /// moment, closed after <see cref="EdgeOptions.RevokedConnectionGrace"/>. Checked with the heartbeats,
    /// so within half a second of the expiry.
    /// </summary>
    private void WithdrawExpired()
    {
        var now = _time.GetUtcNow();
        foreach (var (connection, notAfter) in _expiries)
        {
            if (now >= notAfter && _expiries.TryRemove(connection, out _))
            {
                Withdraw(connection, new CredentialProblem(false, $"The credential {connection.CredentialId} expired at {notAfter:u}."), ExpiredReason);
            }
        }
    }

    private const string ExpiredReason = "expired";

    private void Withdraw(TunnelConnection connection, CredentialProblem problem, string? reason = null)
    {
        // Removing the certificate is the claim: a connection is withdrawn once, however many checks see it.
        if (!_certificates.TryRemove(connection, out _))
        {
            return;
        }

        _metrics.TunnelWithdrawn(reason ?? (problem.Revoked ? "revoked" : "untrusted"));
        EdgeLog.TunnelCredentialWithdrawn(_logger, connection.Id, connection.ConnectorId, _options.RevokedConnectionGrace.TotalSeconds, problem.Message);
        connection.MarkDraining();
        connection.RequestMove();
        _ = CloseAfterGraceAsync(connection);
    }

    private async Task CloseAfterGraceAsync(TunnelConnection connection)
    {
        await Task.WhenAny(connection.Closed, Task.Delay(_options.RevokedConnectionGrace, _time)).ConfigureAwait(false);
        if (!connection.Closed.IsCompleted)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The TLS stack's own words: the outer exception says only "authentication failed", the innermost
    /// one names the alert (no application protocol, unsupported protocol version, ...).
    /// </summary>
    private static string DescribeHandshakeFailure(Exception exception)
    {
        var innermost = exception;
        while (innermost.InnerException is { } inner)
        {
            innermost = inner;
        }

        var detail = innermost.Message;
        if (detail.Contains("application protocol", StringComparison.OrdinalIgnoreCase))
        {
            detail += $" (the client did not offer ALPN '{TunnelProtocol.Alpn}')";
        }

        return ReferenceEquals(innermost, exception) ? detail : $"{exception.Message} {detail}";
    }

    private static bool IsEdgeCertificate(X509Certificate2 certificate)
    {
        using var probe = Probe(certificate);
        return probe.Extensions.OfType<X509EnhancedKeyUsageExtension>()
            .Any(usage => usage.EnhancedKeyUsages.Cast<Oid>().Any(oid => oid.Value == ServerAuthOid));
    }

    /// <summary>
    /// A throwaway handle to the same certificate, for reading its extensions: reading them caches them,
    /// decoded (OIDs, names, a dozen objects, ~1.5 KB), on the object read, and both the TLS stream's
    /// copy and the listener's are kept for the tunnel's whole life.
    /// </summary>
    private static X509Certificate2 Probe(X509Certificate2 certificate) => new(certificate);

    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    private static string DescribeCertificateProblem(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return "the origin presented no client certificate";
        }

        var statuses = chain?.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct().ToArray() ?? [];
        var detail = statuses.Length > 0 ? string.Join("; ", statuses) : errors.ToString();
        if (chain?.ChainStatus.Any(s => (s.Status & (X509ChainStatusFlags.NotValidForUsage | X509ChainStatusFlags.InvalidPolicyConstraints | X509ChainStatusFlags.NoIssuanceChainPolicy)) != 0) == true)
        {
            // OpenSSL's words for a missing client-auth usage are only "invalid policy".
            detail += " (it is not issued for client authentication; a server certificate cannot register)";
        }

        if (chain?.ChainStatus.Any(s => (s.Status & (X509ChainStatusFlags.PartialChain | X509ChainStatusFlags.UntrustedRoot)) != 0) == true)
        {
            detail += " (it is not issued by a CA this edge trusts)";
        }

        return $"the origin certificate ({certificate.Subject}) was refused: {detail}";
    }
}
