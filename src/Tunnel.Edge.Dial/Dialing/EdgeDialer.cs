using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Dial.Dialing;

/// <summary>
/// Opens one tunnel connection: TCP, then TLS (ALPN <c>tunnel/1</c>, client certificate, edge certificate
/// validated), then the registration exchange. Each phase has its own timeout and its own failure type.
/// </summary>
public sealed class EdgeDialer
{
    private readonly EdgeDialOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates a dialer; checks the options once here.</summary>
    public EdgeDialer(EdgeDialOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.ClientCertificate is null)
        {
            throw new ArgumentException("A client certificate issued by the edge's CA is required.", nameof(options));
        }

        if (!options.ClientCertificate.HasPrivateKey)
        {
            throw new ArgumentException("The client certificate has no private key.", nameof(options));
        }

        if (options.Hostnames.Count + options.Connections.Count == 0)
        {
            throw new ArgumentException("At least one hostname to register is required.", nameof(options));
        }

        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        ClientCertificateContext = SslStreamCertificateContext.Create(options.ClientCertificate, additionalCertificates: null, offline: true);
    }

    private SslStreamCertificateContext ClientCertificateContext { get; }

    /// <summary>
    /// Dials <paramref name="edge"/> and registers connection slot <paramref name="connectionIndex"/>.
    /// </summary>
    /// <exception cref="EdgeDialException">A phase failed; <see cref="EdgeDialException.Phase"/> says which.</exception>
    /// <exception cref="RegistrationRejectedException">The edge refused the registration.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<EdgeConnection> DialAsync(EdgeAddress edge, int connectionIndex, int previousAttempts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(edge);
        var started = _time.GetTimestamp();
        var socket = await ConnectTcpAsync(edge, cancellationToken).ConfigureAwait(false);
        var tcpTime = _time.GetElapsedTime(started);
        SslStream? tls = null;
        try
        {
            started = _time.GetTimestamp();
            tls = await AuthenticateAsync(edge, socket, cancellationToken).ConfigureAwait(false);
            var tlsTime = _time.GetElapsedTime(started);

            started = _time.GetTimestamp();
            var accepted = await RegisterAsync(tls, connectionIndex, previousAttempts, cancellationToken).ConfigureAwait(false);
            var registrationTime = _time.GetElapsedTime(started);

            return new EdgeConnection(edge, tls, socket.LocalEndPoint, socket.RemoteEndPoint, accepted, new DialTimings(tcpTime, tlsTime, registrationTime));
        }
        catch
        {
            if (tls is not null)
            {
                await tls.DisposeAsync().ConfigureAwait(false);
            }

            socket.Dispose();
            throw;
        }
    }

    private async Task<Socket> ConnectTcpAsync(EdgeAddress edge, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (edge.Addresses.Count > 0)
            {
                await socket.ConnectAsync(edge.Addresses.ToArray(), edge.Port, timeout.Token).ConfigureAwait(false);
            }
            else if (IPAddress.TryParse(edge.Host, out var ip))
            {
                await socket.ConnectAsync(new IPEndPoint(ip, edge.Port), timeout.Token).ConfigureAwait(false);
            }
            else
            {
                await socket.ConnectAsync(new DnsEndPoint(edge.Host, edge.Port), timeout.Token).ConfigureAwait(false);
            }

            // Long-lived and mostly idle: let the kernel notice a dead peer too, beside HTTP/2 PINGs.
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new EdgeDialException(DialPhase.Tcp, "timeout", $"Connecting to edge {edge} timed out after {_options.ConnectTimeout.TotalSeconds:0.#} s.");
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            var errorType = ex.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => "connection_refused",
                SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => "host_not_found",
                SocketError.HostUnreachable or SocketError.NetworkUnreachable => "unreachable",
                SocketError.TimedOut => "timeout",
                _ => "socket_error",
            };
            throw new EdgeDialException(DialPhase.Tcp, errorType, $"Connecting to edge {edge} failed: {ex.Message} ({ex.SocketErrorCode}).", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task<SslStream> AuthenticateAsync(EdgeAddress edge, Socket socket, CancellationToken cancellationToken)
    {
        var serverName = _options.EdgeServerName ?? edge.Host;
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        var authOptions = new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            ApplicationProtocols = [new SslApplicationProtocol(TunnelProtocol.Alpn)],
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ClientCertificateContext = ClientCertificateContext,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = ValidateEdgeCertificate,
        };

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.TlsHandshakeTimeout);
        try
        {
            await ssl.AuthenticateAsClientAsync(authOptions, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new EdgeDialException(DialPhase.Tls, "tls_timeout", $"The TLS handshake with edge {edge} did not finish within {_options.TlsHandshakeTimeout.TotalSeconds:0.#} s.");
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new EdgeDialException(DialPhase.Tls, "tls_error", $"The TLS handshake with edge {edge} failed: {Describe(ex)}", ex);
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        if (ssl.NegotiatedApplicationProtocol.ToString() != TunnelProtocol.Alpn)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new EdgeDialException(DialPhase.Tls, "alpn_mismatch", $"Edge {edge} did not agree to ALPN '{TunnelProtocol.Alpn}'; it is not a tunnel edge of this protocol version.");
        }

        return ssl;
    }

    private bool ValidateEdgeCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (_options.AcceptsAnyEdgeCertificate)
        {
            return true;
        }

        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return false;
        }

        if (_options.TrustedEdgeCertificates.Count == 0)
        {
            return errors == SslPolicyErrors.None;
        }

        // Pinned CA: rebuild the chain against it alone, ignoring the system's verdict on trust.
        using var pinned = new X509Chain();
        pinned.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        pinned.ChainPolicy.CustomTrustStore.AddRange(_options.TrustedEdgeCertificates);
        pinned.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        pinned.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1"));
        if (chain is not null)
        {
            pinned.ChainPolicy.ExtraStore.AddRange(chain.ChainElements.Select(e => e.Certificate).ToArray());
        }

        using var leaf = new X509Certificate2(certificate);
        return pinned.Build(leaf);
    }

    private async Task<RegistrationAccepted> RegisterAsync(SslStream tls, int connectionIndex, int previousAttempts, CancellationToken cancellationToken)
    {
        var request = new RegistrationRequest
        {
            ConnectorId = _options.ConnectorId,
            ConnectionIndex = connectionIndex,
            Hostnames = _options.Hostnames.ToArray(),
            Connections = _options.Connections.ToArray(),
            ClientVersion = _options.ClientVersion,
            PreviousAttempts = previousAttempts,
        };

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RegistrationTimeout);
        RegistrationResponse response;
        try
        {
            await RegistrationCodec.WriteRequestAsync(tls, request, timeout.Token).ConfigureAwait(false);
            response = await RegistrationCodec.ReadResponseAsync(tls, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EdgeDialException(DialPhase.Registration, "registration_timeout", $"The edge did not answer the registration within {_options.RegistrationTimeout.TotalSeconds:0.#} s.");
        }
        catch (RegistrationProtocolException ex)
        {
            throw new EdgeDialException(DialPhase.Registration, "protocol_error", $"The edge broke the registration exchange: {ex.Message}", ex);
        }
        catch (IOException ex)
        {
            throw new EdgeDialException(DialPhase.Registration, "connection_lost", $"The connection to the edge ended during registration: {ex.Message}", ex);
        }

        if (response.Rejected is { } rejected)
        {
            throw new RegistrationRejectedException(rejected);
        }

        return response.Accepted!;
    }

    private static string Describe(Exception ex)
    {
        var message = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            message += " -> " + inner.Message;
        }

        return message;
    }
}
