using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// Takes tunnels out of service: every tunnel when the edge stops (the drain), and one whose
/// credential was revoked, stopped being trusted, expired or lost its names to another's claim: that
/// one takes no new request, is asked to move, and is closed after
/// <see cref="EdgeOptions.RevokedConnectionGrace"/>.
/// </summary>
internal sealed class TunnelWithdrawals
{
    // Short enough that the edge exits moments after its last tunnel moved.
    private static readonly TimeSpan DrainPollInterval = TimeSpan.FromMilliseconds(50);

    private const string ExpiredReason = "expired";

    private readonly EdgeOptions _options;
    private readonly RouteTable _routes;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly EdgeCredentials _credentials;
    private readonly EdgeMetrics _metrics;

    // The certificate each served connection presented; removing it claims the connection's withdrawal.
    private readonly ConcurrentDictionary<TunnelConnection, X509Certificate2> _certificates = new();

    // When each served connection's certificate expires (read once: the heartbeat check compares these).
    private readonly ConcurrentDictionary<TunnelConnection, DateTimeOffset> _expiries = new();

    public TunnelWithdrawals(EdgeOptions options, RouteTable routes, ILogger logger, TimeProvider time, EdgeCredentials credentials, EdgeMetrics metrics)
    {
        _options = options;
        _routes = routes;
        _logger = logger;
        _time = time;
        _credentials = credentials;
        _metrics = metrics;
    }

    /// <summary>A registered connection starts serving: watched for revocation and expiry from now on.</summary>
    public void Track(TunnelConnection connection, X509Certificate2 certificate)
    {
        _certificates[connection] = certificate;
        _expiries[connection] = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
    }

    /// <summary>Checks a connection's credential now: withdrawn if it may no longer serve.</summary>
    public void CheckNow(TunnelConnection connection, X509Certificate2 certificate)
    {
        if (_credentials.Check(certificate) is { } problem)
        {
            Withdraw(connection, problem);
        }
    }

    /// <summary>The connection closed.</summary>
    public void Forget(TunnelConnection connection)
    {
        _certificates.TryRemove(connection, out _);
        _expiries.TryRemove(connection, out _);
    }

    /// <summary>
    /// The edge is stopping: asks every connected origin to move to another edge and waits, serving
    /// through the existing tunnels, until the origins have closed them (they do once their
    /// replacements are registered; <paramref name="places"/> counts what is left) or
    /// <see cref="EdgeOptions.DrainTimeout"/> passes.
    /// </summary>
    public async Task DrainAsync(Func<int> places, CancellationToken cancellationToken)
    {
        // Places, not the route table: a registration accepted a moment ago holds a place before its
        // connection is in the table, and must be moved too.
        if (places() == 0)
        {
            return;
        }

        EdgeLog.Draining(_logger, places(), _options.DrainTimeout.TotalSeconds);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.DrainTimeout);
        try
        {
            // Registrations that were under way when draining began land here too, so look again
            // until every place is given back rather than waiting on one snapshot.
            while (places() > 0)
            {
                foreach (var connection in _routes.Connections())
                {
                    connection.RequestMove();
                }

                await Task.Delay(DrainPollInterval, _time, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Whatever is still open closes with the listener.
        }
    }

    /// <summary>
    /// After the revocation list or the CA bundle changed: every live connection whose credential may no
    /// longer serve takes no new request from now on, is asked to move, and is closed after
    /// <see cref="EdgeOptions.RevokedConnectionGrace"/> (its in-flight requests finish meanwhile).
    /// </summary>
    public void CheckLiveCredentials()
    {
        foreach (var (connection, certificate) in _certificates)
        {
            if (_credentials.Check(certificate) is { } problem)
            {
                Withdraw(connection, problem);
            }
        }
    }

    /// <summary>
    /// A certificate's <c>NotAfter</c> ends its tunnels as a revocation would: no new request from that
    /// moment, closed after <see cref="EdgeOptions.RevokedConnectionGrace"/>. Checked with the heartbeats,
    /// so within half a second of the expiry.
    /// </summary>
    public void WithdrawExpired()
    {
        var now = _time.GetUtcNow();
        foreach (var (connection, notAfter) in _expiries)
        {
            if (now >= notAfter && _expiries.TryRemove(connection, out _))
            {
                Withdraw(connection, new CredentialProblem(false, $"The credential {connection.CredentialId} expired at {notAfter:u}."), ExpiredReason);
            }
        }
    }

    /// <summary>Withdraws a connection once (however many checks see it), logged and counted with <paramref name="reason"/>.</summary>
    public void Withdraw(TunnelConnection connection, CredentialProblem problem, string? reason = null)
    {
        // Removing the certificate is the claim: a connection is withdrawn once, however many checks see it.
        if (!_certificates.TryRemove(connection, out _))
        {
            return;
        }

        _metrics.TunnelWithdrawn(reason ?? (problem.Revoked ? "revoked" : "untrusted"));
        EdgeLog.TunnelCredentialWithdrawn(_logger, connection.Id, connection.ConnectorId, _options.RevokedConnectionGrace.TotalSeconds, problem.Message);
        connection.MarkDraining();
        connection.RequestMove();
        _ = CloseAfterGraceAsync(connection);
    }

    private async Task CloseAfterGraceAsync(TunnelConnection connection)
    {
        await Task.WhenAny(connection.Closed, Task.Delay(_options.RevokedConnectionGrace, _time)).ConfigureAwait(false);
        if (!connection.Closed.IsCompleted)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
