namespace Tunnel.Transport.Internal;

internal sealed class TunnelConnectionFeature : ITunnelConnectionFeature
{
    public required string EdgeName { get; init; }

    public required string EdgeRegion { get; init; }

    public required string EdgeAddress { get; init; }

    public required string TunnelConnectionId { get; init; }

    public required int ConnectionIndex { get; init; }

    public required DateTimeOffset RegisteredAt { get; init; }

    /// <summary>Completes when the edge asks this connection to move (it is draining), or the anchor broke.</summary>
    public Task MoveRequested => _moveRequested.Task;

    private readonly TaskCompletionSource _moveRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void RequestMove() => _moveRequested.TrySetResult();

    /// <summary>Aborts the whole tunnel connection (set by the slot that owns it).</summary>
    public Action<string>? AbortConnection { get; set; }
}
