using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Transport.Internal;

/// <summary>
/// Everything one generation of dials uses. A renewed credential makes a new one; connections
/// remember which generation dialed them, so the renewal knows which to replace.
/// </summary>
internal sealed class TunnelDialState(int generation, IReadOnlyList<string> edges, EdgeDialOptions dialOptions, EdgeDialer dialer, EdgeSelector selector, string source, string fingerprint)
{
    public int Generation { get; } = generation;

    /// <summary>The configured edges as given (addresses and SRV name), for logs.</summary>
    public IReadOnlyList<string> Edges { get; } = edges;

    public EdgeDialOptions DialOptions { get; } = dialOptions;

    public EdgeDialer Dialer { get; } = dialer;

    public EdgeSelector Selector { get; } = selector;

    /// <summary>Where the certificate came from (a file path, or <c>Tunnel:Certificate</c>).</summary>
    public string Source { get; } = source;

    public string Fingerprint { get; } = fingerprint;

    public X509Certificate2 Certificate => DialOptions.ClientCertificate!;

    /// <summary>The certificate's serial number, upper-case hex: the credential id the edge lists and revokes.</summary>
    public string CredentialId => TunnelCredential.IdOf(Certificate);
}

/// <summary>The outcome of <see cref="TunnelSettings.Reload"/>.</summary>
internal sealed record TunnelReload(TunnelDialState? State, string? Problem)
{
    public static TunnelReload Unchanged { get; } = new(null, null);

    public static TunnelReload Renewed(TunnelDialState state) => new(state, null);

    public static TunnelReload Failed(string problem) => new(null, problem);
}
