using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Tunnel.Protocol;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// Watches each served tunnel through its anchor: the first HTTP/2 request, whose body the origin
/// keeps open and beats into (<see cref="TunnelLimits.AnchorHeartbeatInterval"/>). A silent origin is
/// marked silent; a clean end of the anchor means the origin is draining.
/// </summary>
internal sealed class AnchorMonitor
{
    // Checking twice per heartbeat keeps the reaction to silence within half a beat of the limit.
    public static readonly TimeSpan HeartbeatCheckInterval = TunnelLimits.AnchorHeartbeatInterval / 2;

    private readonly EdgeOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Action? _readinessChanged;

    // The connections being served, for the heartbeat check twice a second: walking this costs nothing,
    // where the route table's distinct copy of every connection was garbage of kilobytes per check.
    private readonly ConcurrentDictionary<TunnelConnection, byte> _served = new();

    /// <summary>Creates the monitor; <paramref name="readinessChanged"/> is called after a connection's readiness changed (the cluster publishes each route's).</summary>
    public AnchorMonitor(EdgeOptions options, ILogger logger, TimeProvider time, Action? readinessChanged = null)
    {
        _readinessChanged = readinessChanged;
        _options = options;
        _logger = logger;
        _time = time;
    }

    /// <summary>A registered connection starts serving: its heartbeats are checked from now on.</summary>
    public void Watch(TunnelConnection connection) => _served[connection] = 0;

    /// <summary>The connection closed.</summary>
    public void Forget(TunnelConnection connection) => _served.TryRemove(connection, out _);

    /// <summary>
    /// Sends the anchor request, the connection's first HTTP/2 request, then reads its heartbeats in
    /// the background. A connection that does not answer is closed.
    /// </summary>
    public async Task ProbeAsync(TunnelConnection connection)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, TunnelConnection.RequestUriPrefix + TunnelHeaderNames.ProbePath)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new AnchorHeartbeatContent(connection.AnchorCancellation.Token),
        };
        request.Headers.Host = (connection.Hostnames.Count > 0 ? connection.Hostnames[0] : connection.ConnectionRoutes[0].Hostname).TrimStart('*', '.');
        request.Headers.TryAddWithoutValidation(TunnelHeaderNames.Probe, "1");
        HttpResponseMessage anchor;
        using (var timeout = new CancellationTokenSource(_options.KeepAlivePingDelay + _options.KeepAlivePingTimeout))
        {
            try
            {
                anchor = await connection.Invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
            {
                request.Dispose();
                EdgeLog.HandshakeFailed(_logger, connection.Remote?.ToString() ?? "?", $"tunnel {connection.Id} did not answer its first HTTP/2 request: {ex.Message}");
                await connection.DisposeAsync().ConfigureAwait(false);
                return;
            }
        }

        _ = WatchAnchorAsync(connection, request, anchor);
    }

    /// <summary>
    /// Reads the anchor stream: each byte is the origin's heartbeat. A clean end means the origin is
    /// stopping (it drains), so the connection takes no new requests from that moment. Cancelling the
    /// read (the edge is draining) resets the stream, which the origin takes as "move elsewhere".
    /// </summary>
    private async Task WatchAnchorAsync(TunnelConnection connection, HttpRequestMessage request, HttpResponseMessage anchor)
    {
        connection.RecordHeartbeat(_time.GetTimestamp());
        using (request)
        using (anchor)
        {
            try
            {
                var body = await anchor.Content.ReadAsStreamAsync(connection.AnchorCancellation.Token).ConfigureAwait(false);
                var buffer = new byte[64];
                int read;
                while ((read = await body.ReadAsync(buffer, connection.AnchorCancellation.Token).ConfigureAwait(false)) > 0)
                {
                    connection.RecordHeartbeat(_time.GetTimestamp());
                    ApplyReadiness(connection, buffer[read - 1]);
                }

                connection.MarkDraining();
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                // Cancelled by our own drain (the connection keeps serving until the origin closes it),
                // or the connection failed (Closed reports that).
                if (!connection.AnchorCancellation.IsCancellationRequested)
                {
                    connection.MarkDraining();
                }
            }
        }
    }

    /// <summary>
    /// The last beat read says whether the origin's app is ready (<see cref="AnchorBeat"/>); a value this
    /// edge does not know is a heartbeat only, so a later origin's new values change nothing here.
    /// </summary>
    private void ApplyReadiness(TunnelConnection connection, byte beat)
    {
        if (beat is AnchorBeat.Ready or AnchorBeat.NotReady && connection.SetReady(beat == AnchorBeat.Ready))
        {
            ReadinessLog.Changed(_logger, connection);
            _readinessChanged?.Invoke();
        }
    }

    /// <summary>Marks the tunnels whose origin has been silent too long; called every <see cref="HeartbeatCheckInterval"/>.</summary>
    public void CheckHeartbeats()
    {
        foreach (var (connection, _) in _served)
        {
            var wasSilent = connection.IsSilent;
            if (connection.CheckHeartbeat(_time) && !wasSilent)
            {
                EdgeLog.TunnelSilent(_logger, connection.Id, TunnelLimits.AnchorSilenceLimit.TotalMilliseconds);
            }
        }
    }
}
