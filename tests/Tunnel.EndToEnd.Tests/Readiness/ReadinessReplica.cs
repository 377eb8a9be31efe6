using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Tunnel.Transport;

namespace Tunnel.EndToEnd.Tests.Readiness;

/// <summary>
/// One origin replica's side of a readiness test: a health check tagged <c>ready</c> whose answer the
/// test sets, and a count of the visitor requests the app saw, with the time of the last one.
/// </summary>
internal sealed class ReadinessReplica(string connectorId)
{
    private long _requests;
    private long _lastRequest;
    private volatile bool _ready = true;

    public string ConnectorId { get; } = connectorId;

    public bool Ready
    {
        get => _ready;
        set => _ready = value;
    }

    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>The <see cref="Stopwatch"/> timestamp of the last request the app saw.</summary>
    public long LastRequest => Interlocked.Read(ref _lastRequest);

    public void ConfigureTunnel(TunnelOptions tunnel)
    {
        // The readiness check interval stays at its default (500 ms): the tests hold the default to
        // "traffic leaves a replica within a second".
        tunnel.ConnectorId = ConnectorId;
    }

    public void AddReadinessCheck(WebApplicationBuilder builder) =>
        builder.Services.AddHealthChecks().AddCheck(
            "warm-cache", () => _ready ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("the cache is being rebuilt"), tags: ["ready"]);

    /// <summary>Counts every request that reaches the app (the tunnel's anchor never does).</summary>
    public void CountRequests(WebApplication app) => app.Use(async (context, next) =>
    {
        Interlocked.Exchange(ref _lastRequest, Stopwatch.GetTimestamp());
        Interlocked.Increment(ref _requests);
        await next(context);
    });
}
