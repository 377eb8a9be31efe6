namespace Tunnel.Transport.Internal;

internal sealed class TunnelConnectionFeature : ITunnelConnectionFeature
{
    public required string EdgeName { get; init; }

    public required string EdgeRegion { get; init; }

    public required string EdgeAddress { get; init; }

    public required string TunnelConnectionId { get; init; }

    public required int ConnectionIndex { get; init; }

    public required DateTimeOffset RegisteredAt { get; init; }

    public required string CredentialId { get; init; }

    /// <summary>The edge's identity assertion key from this connection's registration reply (<see cref="Identity.TunnelIdentityHandler"/>); <c>null</c> when the edge signs nobody in.</summary>
    public string? IdentityKey { get; init; }

    /// <summary>Completes when the edge asks this connection to move (it is draining), or the anchor broke.</summary>
    public Task MoveRequested => _moveRequested.Task;

    private readonly TaskCompletionSource _moveRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void RequestMove() => _moveRequested.TrySetResult();

    /// <summary>
    /// Cancelled when the slot retires this connection (a renewed credential replaced it): the anchor
    /// stream ends cleanly, which tells the edge to send it nothing new, before Kestrel closes it gracefully.
    /// </summary>
    public CancellationToken AnchorReleased => _anchorReleased.Token;

    private readonly CancellationTokenSource _anchorReleased = new();

    public void ReleaseAnchor()
    {
        try
        {
            _anchorReleased.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Aborts the whole tunnel connection (set by the slot that owns it).</summary>
    public Action<string>? AbortConnection { get; set; }
}
