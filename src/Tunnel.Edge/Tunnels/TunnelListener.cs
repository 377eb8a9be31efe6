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
using Tunnel.Edge.Visitors.Passthrough;
using Tunnel.Protocol;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// The tunnel port: accepts origins' TCP connections (within the <see cref="HandshakeGate"/>'s caps),
/// runs the TLS handshake (client certificate from the edge's CA, ALPN <c>tunnel/1</c>), hands the
/// registration exchange to <see cref="TunnelRegistrar"/>, and serves accepted connections from the
/// route table until they close, watched by <see cref="AnchorMonitor"/> and taken out of service by
/// <see cref="TunnelWithdrawals"/>.
/// </summary>
internal sealed class TunnelListener : BackgroundService, IHostedLifecycleService
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    private readonly EdgeOptions _options;
    private readonly RouteTable _routes;
    private readonly ConnectionRouteTables _connectionRoutes;
    private readonly EdgeConnectionEvents _events;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly EdgeCredentials _credentials;
    private readonly HandshakeGate _handshakes;
    private readonly TunnelRegistrar _registrar;
    private readonly AnchorMonitor _anchors;
    private readonly TunnelWithdrawals _withdrawals;
    private readonly Socket _socket;

    /// <summary>Creates the listener and binds its port at once, so a taken port fails the start.</summary>
    public TunnelListener(EdgeOptions options, RouteTable routes, ILogger<TunnelListener> logger, TimeProvider time, EdgeCredentials credentials, EdgeConnectionEvents events, EdgeMetrics metrics, RegistrationPolicy policy, ConnectionRouteTables connectionRoutes, ConnectionModePolicy connectionModes, Access.SignIn.EdgeAssertionSigner? assertionSigner = null)
    {
        _connectionRoutes = connectionRoutes;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(policy);
        _handshakes = new HandshakeGate(options, metrics, logger, time);
        _options = options;
        _routes = routes;
        _events = events;
        _logger = logger;
        _time = time;
        _credentials = credentials;
        _withdrawals = new TunnelWithdrawals(options, routes, logger, time, credentials, metrics);
        _registrar = new TunnelRegistrar(options, logger, time, credentials, events, policy, _withdrawals, connectionModes) { IdentityKey = assertionSigner?.PublicKey };
        _anchors = new AnchorMonitor(options, logger, time, routes.OnReadinessChanged);
        _credentials.TrustChanged += _withdrawals.CheckLiveCredentials;

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
    internal int TunnelPlaces => _registrar.Places;

    /// <summary>Connections accepted and not yet registered (tests check the cap holds and none leak).</summary>
    internal int HandshakesInFlight => _handshakes.InFlight;

    /// <summary>Refuse new registrations from now on (the edge is shutting down).</summary>
    public void StartDraining() => _registrar.StartDraining();

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        EdgeLog.TunnelListening(_logger, EndPoint.ToString());
        _credentials.StartWatching(_logger, _time);
        var housekeeping = KeepHouseAsync(stoppingToken);
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

        await housekeeping.ConfigureAwait(false);
    }

    /// <summary>
    /// The first step of the edge's shutdown, before the visitor listener stops: refuse new tunnels,
    /// ask every connected origin to move to another edge, and keep serving through the existing
    /// tunnels until the origins have closed them (they do once their replacements are registered)
    /// or <see cref="EdgeOptions.DrainTimeout"/> passes.
    /// </summary>
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        StartDraining();
        return _withdrawals.DrainAsync(() => _registrar.Places, cancellationToken);
    }

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
        _credentials.TrustChanged -= _withdrawals.CheckLiveCredentials;
        _socket.Dispose();
        base.Dispose();
    }

    private async Task HandleAsync(Socket socket, HandshakeGate.Admission admission, CancellationToken stoppingToken)
    {
        var remote = socket.RemoteEndPoint?.ToString() ?? "?";
        SslStream? ssl = null;
        try
        {
            ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
            var (completed, certificateProblem) = await AuthenticateAsync(ssl, remote, stoppingToken).ConfigureAwait(false);
            if (!completed)
            {
                return;
            }

            using var clientCertificate = ssl.RemoteCertificate is { } presented ? new X509Certificate2(presented) : null;
            if (certificateProblem is not null || clientCertificate is null)
            {
                await _registrar.RefuseCertificateAsync(ssl, remote, certificateProblem ?? "the origin presented no client certificate", stoppingToken).ConfigureAwait(false);
                return;
            }

            var connection = await _registrar.RegisterAsync(ssl, clientCertificate, socket.RemoteEndPoint, remote, stoppingToken).ConfigureAwait(false);
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

    /// <summary>
    /// The TLS handshake (client certificate from the edge's CA, ALPN <c>tunnel/1</c>), within
    /// <see cref="EdgeOptions.TlsHandshakeTimeout"/>. Returns whether it completed (a failure is logged),
    /// and what is wrong with the client certificate, if anything: that is answered as a registration
    /// rejection, not a TLS alert.
    /// </summary>
    private async Task<(bool Completed, string? CertificateProblem)> AuthenticateAsync(SslStream ssl, string remote, CancellationToken stoppingToken)
    {
        string? certificateProblem = null;
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
                return (false, null);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                EdgeLog.HandshakeFailed(_logger, remote, certificateProblem ?? DescribeHandshakeFailure(ex));
                return (false, null);
            }
        }

        if (ssl.NegotiatedApplicationProtocol.ToString() != TunnelProtocol.Alpn)
        {
            EdgeLog.HandshakeFailed(_logger, remote, $"the client did not offer ALPN '{TunnelProtocol.Alpn}'");
            return (false, null);
        }

        if (_options.ReleaseIdleTlsBuffers && !TlsBufferRelease.TryApply(ssl, out var releaseProblem) && releaseProblem is not null)
        {
            EdgeLog.TlsBufferReleaseUnavailable(_logger, releaseProblem);
        }

        return (true, certificateProblem);
    }

    private async Task ServeAsync(TunnelConnection connection, X509Certificate2 clientCertificate)
    {
        connection.OriginFaulted += ReportOriginFault;
        _routes.Add(connection);
        _connectionRoutes.Add(connection);
        _anchors.Watch(connection);
        _withdrawals.Track(connection, clientCertificate);
        try
        {
            // A revocation seen between the registration's authorization and now found no connection to close; look again.
            _withdrawals.CheckNow(connection, clientCertificate);

            // Open HTTP/2 now rather than on the first visitor's request, so keepalive PINGs watch the
            // tunnel from the start and a dead origin is found before a visitor is sent to it.
            await _anchors.ProbeAsync(connection).ConfigureAwait(false);
            await connection.Closed.ConfigureAwait(false);
        }
        finally
        {
            _withdrawals.Forget(connection);
            _anchors.Forget(connection);
            _routes.Remove(connection);
            _connectionRoutes.Remove(connection);
            _registrar.ReleasePlace();
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

    /// <summary>
    /// Twice per heartbeat: silent tunnels marked, expired credentials withdrawn, and memory given
    /// back once a burst of registrations is over.
    /// </summary>
    private async Task KeepHouseAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(AnchorMonitor.HeartbeatCheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                _anchors.CheckHeartbeats();

                _withdrawals.WithdrawExpired();
                _registrar.TrimAfterRegistrationBurst();
            }
        }
        catch (OperationCanceledException)
        {
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
    internal static X509Certificate2 Probe(X509Certificate2 certificate) => new(certificate);

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
