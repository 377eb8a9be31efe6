using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Transport.Internal;

/// <summary>
/// The slots' way to the edges in production: edge selection from the current dial state, one
/// traced dial per attempt, and the warnings that concern every slot at once.
/// </summary>
internal sealed class TunnelSlotDialer(TunnelSettings settings, ILogger logger, TimeProvider time) : ISlotDialer
{
    private string? _lastEdgeWarning;

    public int CurrentGeneration => settings.Current.Generation;

    public async Task<SlotDial> DialAsync(int index, int previousAttempts, Action<EdgeAddress> edgeChosen, CancellationToken cancellationToken)
    {
        // Each attempt dials with the credential current then: a renewal takes effect at the next dial.
        var state = settings.Current;
        var choice = await state.Selector.SelectAsync(index, cancellationToken).ConfigureAwait(false);
        edgeChosen(choice.Edge);
        if (choice.Wait > TimeSpan.Zero)
        {
            TunnelLog.WaitingForRetryAfter(logger, index, choice.Edge.ToString(), choice.Wait.TotalMilliseconds);
            await Task.Delay(choice.Wait, time, cancellationToken).ConfigureAwait(false);
        }

        return await DialEdgeAsync(index, choice.Edge, state, previousAttempts, cancellationToken).ConfigureAwait(false);
    }

    public Task<SlotDial> DialEdgeAsync(int index, EdgeAddress edge, CancellationToken cancellationToken) =>
        DialEdgeAsync(index, edge, settings.Current, 0, cancellationToken);

    public void OnRegistered(SlotDial dial) => WarnAboutFewEdges(dial.Selector);

    /// <summary>One dial of one edge, traced as its own root span; a failure sets the edge aside.</summary>
    private async Task<SlotDial> DialEdgeAsync(int index, EdgeAddress edge, TunnelDialState state, int consecutiveFailures, CancellationToken token)
    {
        // A root span per attempt: dials run in the background, not inside any request's trace.
        Activity.Current = null;
        using var activity = TunnelActivitySource.Source.StartActivity("tunnel.dial", ActivityKind.Client);
        activity?.SetTag("tunnel.connection.index", index);
        activity?.SetTag("server.address", edge.Host);
        activity?.SetTag("server.port", edge.Port);
        WarnWhenEdgeCertificateUnchecked(index, edge, state.DialOptions);
        try
        {
            var dialed = await state.Dialer.DialAsync(edge, index, consecutiveFailures, token).ConfigureAwait(false);
            activity?.SetTag("tunnel.edge.name", dialed.Registration.EdgeName);
            activity?.SetTag("tunnel.edge.region", dialed.Registration.Region);
            activity?.SetTag("tunnel.connection.id", dialed.Registration.ConnectionId);
            return new SlotDial(dialed.Edge, dialed.Registration, dialed.Timings, dialed.Stream, dialed.LocalEndPoint, dialed.RemoteEndPoint, state.Selector, state.Generation, state.CredentialId);
        }
        catch (RegistrationRejectedException rejected)
        {
            activity?.SetStatus(ActivityStatusCode.Error, rejected.Rejection.Message);
            activity?.SetTag("error.type", rejected.Rejection.Code);
            var retryAfter = rejected.Rejection.RetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            state.Selector.ReportFailure(edge, retryAfter);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.SetTag("error.type", (ex as EdgeDialException)?.ErrorType ?? ex.GetType().Name);
            state.Selector.ReportFailure(edge);
            throw;
        }
    }

    /// <summary>A warning at every dial while the edge's certificate check is turned off (Development only).</summary>
    private void WarnWhenEdgeCertificateUnchecked(int index, EdgeAddress edge, EdgeDialOptions dialOptions)
    {
        if (!dialOptions.DangerousAcceptAnyEdgeCertificate)
        {
            return;
        }

        if (dialOptions.AcceptsAnyEdgeCertificate)
        {
            TunnelLog.EdgeCertificateNotValidated(logger, index, edge.ToString());
        }
        else
        {
            TunnelLog.EdgeCertificatePinStillApplies(logger, index, edge.ToString(), string.Join(", ", dialOptions.TrustedEdgeCertificates.Select(ca => ca.Subject)));
        }
    }

    /// <summary>
    /// Warns, once per change of what discovery lists, when one edge failure would drop every tunnel
    /// connection: a single edge known, or a single edge of the best SRV priority (the others are
    /// backups that slots use only while it is down).
    /// </summary>
    private void WarnAboutFewEdges(EdgeSelector selector)
    {
        var knownEdges = selector.KnownEdgeCount;
        var best = selector.BestPriorityEdges;
        var key = $"{knownEdges}|{string.Join(',', best)}";
        if (Interlocked.Exchange(ref _lastEdgeWarning, key) == key || settings.HaConnections < 2)
        {
            return;
        }

        if (knownEdges < 2)
        {
            TunnelLog.FewEdges(logger, knownEdges, settings.HaConnections);
        }
        else if (best.Count == 1)
        {
            TunnelLog.OneBestPriorityEdge(logger, settings.HaConnections, best[0].ToString(), best[0].Priority, knownEdges);
        }
    }
}
