using System.Net;

namespace Tunnel.Transport.Internal;

/// <summary>
/// The endpoint Kestrel binds for the tunnel. Only <see cref="TunnelTransportFactory"/> binds it; the
/// app's socket endpoints stay with Kestrel's socket transport.
/// </summary>
internal sealed class TunnelEndPoint(string description) : EndPoint
{
    public string Description { get; } = description;

    public override string ToString() => Description;
}
