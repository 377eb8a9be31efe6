using System.Security.Cryptography.X509Certificates;
using Tunnel.Protocol;

namespace Tunnel.Edge.Dial.Dialing;

/// <summary>
/// What the dialer needs to open and register one tunnel connection.
/// </summary>
public sealed class EdgeDialOptions
{
    /// <summary>The origin's client certificate, issued by the edge's CA, with its private key. Required.</summary>
    public X509Certificate2? ClientCertificate { get; set; }

    /// <summary>
    /// The CA certificates the edge's server certificate must chain to. When empty, the system's
    /// trusted roots are used.
    /// </summary>
    /// <remarks>Defaults to empty (system roots).</remarks>
    public X509Certificate2Collection TrustedEdgeCertificates { get; } = [];

    /// <summary>
    /// Accept any edge certificate without validation. Only for throw-away experiments: anyone on the
    /// path can then read and change all traffic. While <see cref="TrustedEdgeCertificates"/> pins a CA,
    /// the pin still applies unless <see cref="DangerousAcceptAnyEdgeCertificateOverridesPinnedCa"/> is on too.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool DangerousAcceptAnyEdgeCertificate { get; set; }

    /// <summary>
    /// Lets <see cref="DangerousAcceptAnyEdgeCertificate"/> accept an edge certificate that the pinned CAs
    /// (<see cref="TrustedEdgeCertificates"/>) did not issue.
    /// </summary>
    /// <remarks>Defaults to <c>false</c>.</remarks>
    public bool DangerousAcceptAnyEdgeCertificateOverridesPinnedCa { get; set; }

    /// <summary>
    /// Whether dials skip validating the edge's certificate altogether: <see cref="DangerousAcceptAnyEdgeCertificate"/>
    /// with nothing pinned, or with <see cref="DangerousAcceptAnyEdgeCertificateOverridesPinnedCa"/> too.
    /// </summary>
    public bool AcceptsAnyEdgeCertificate =>
        DangerousAcceptAnyEdgeCertificate && (TrustedEdgeCertificates.Count == 0 || DangerousAcceptAnyEdgeCertificateOverridesPinnedCa);

    /// <summary>The TLS server name to send and to check in the edge's certificate; defaults to the edge address's host.</summary>
    public string? EdgeServerName { get; set; }

    /// <summary>The hostnames whose requests to register. At least one of these or of <see cref="Connections"/> is required.</summary>
    public IList<string> Hostnames { get; } = [];

    /// <summary>The hostnames whose visitor connections (not requests) to register, each with its mode.</summary>
    /// <remarks>Empty by default.</remarks>
    public IList<Tunnel.Protocol.Registration.ConnectionRoute> Connections { get; } = [];

    /// <summary>Identifies this process (replica) to the edge.</summary>
    /// <remarks>Defaults to a new random id per process.</remarks>
    public string ConnectorId { get; set; } = Guid.NewGuid().ToString("N");

    /// <summary>Sent to the edge for its logs.</summary>
    /// <remarks>Defaults to <c>Tunnel.Edge.Dial/</c> and the assembly version.</remarks>
    public string ClientVersion { get; set; } = "Tunnel.Edge.Dial/" + typeof(EdgeDialOptions).Assembly.GetName().Version;

    /// <summary>How long a TCP connect may take.</summary>
    /// <remarks>Defaults to 5 seconds: a reachable edge answers in well under a second; longer means pick another.</remarks>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the TLS handshake may take.</summary>
    /// <remarks>Defaults to <see cref="TunnelLimits.TlsHandshakeTimeout"/> (10 seconds).</remarks>
    public TimeSpan TlsHandshakeTimeout { get; set; } = TunnelLimits.TlsHandshakeTimeout;

    /// <summary>How long the edge may take to answer the registration.</summary>
    /// <remarks>Defaults to <see cref="TunnelLimits.RegistrationTimeout"/> (10 seconds).</remarks>
    public TimeSpan RegistrationTimeout { get; set; } = TunnelLimits.RegistrationTimeout;
}
