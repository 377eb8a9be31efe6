using System.Net;
using Tunnel.Protocol;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// The anchor request's body: one byte per <see cref="TunnelLimits.AnchorHeartbeatInterval"/> from
/// the edge, so the origin, too, notices a silent tunnel within seconds and redials.
/// </summary>
internal sealed class AnchorHeartbeatContent(CancellationToken stop) : HttpContent
{
    private static readonly byte[] Beat = [0];

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, cancellationToken);

        // One timer for the anchor's life: a Task.Delay per beat was a timer and a task per second per
        // tunnel, garbage that kept an idle edge's GC busy.
        using var beats = new PeriodicTimer(TunnelLimits.AnchorHeartbeatInterval);
        try
        {
            do
            {
                await stream.WriteAsync(Beat, linked.Token).ConfigureAwait(false);
                await stream.FlushAsync(linked.Token).ConfigureAwait(false);
            }
            while (await beats.WaitForNextTickAsync(linked.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Draining: the anchor is being cancelled on purpose.
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
