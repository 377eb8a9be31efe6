namespace Tunnel.Transport.Internal;

internal sealed class TunnelConnectionFeature : ITunnelConnectionFeature
{
    public required string EdgeName { get; init; }

    public required string EdgeRegion { get; init; }

    public required string EdgeAddress { get; init; }

    public required string TunnelConnectionId { get; init; }

    public required int ConnectionIndex { get; init; }

    public required DateTimeOffset RegisteredAt { get; init; }
}
