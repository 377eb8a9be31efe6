namespace Tunnel.Edge.Dial.Redial;

/// <summary>
/// The redial schedule of one connection slot: exponential backoff with full jitter, capped, reset
/// after a connection has stayed up for <see cref="StablePeriod"/>.
/// </summary>
public sealed class RedialBackoffOptions
{
    /// <summary>The first backoff step; attempt <c>n</c> waits a random time up to <c>BaseDelay * 2^n</c>.</summary>
    /// <remarks>Defaults to 1 second: quick enough that a lost connection comes back before visitors notice.</remarks>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between two attempts.</summary>
    /// <remarks>Defaults to 30 seconds, so that a recovered edge is found again within half a minute.</remarks>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A connection that stayed registered this long counts as healthy: the next failure starts the
    /// schedule from the beginning.
    /// </summary>
    /// <remarks>
    /// Defaults to 5 seconds: longer than the handshake and a few heartbeats, so an edge that drops
    /// every connection at once still meets a growing backoff; short enough that a network cutting
    /// tunnels every few seconds gets each one redialed at once. (At 30 s, cuts every few seconds grew
    /// every slot's wait towards the 30 s cap until all four were down together, and the app with them.)
    /// </remarks>
    public TimeSpan StablePeriod { get; set; } = TimeSpan.FromSeconds(5);

    internal void Validate()
    {
        if (BaseDelay <= TimeSpan.Zero || MaxDelay < BaseDelay || StablePeriod < TimeSpan.Zero)
        {
            throw new InvalidOperationException("Redial backoff needs BaseDelay > 0, MaxDelay >= BaseDelay and StablePeriod >= 0.");
        }
    }
}
