using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Tunnel.Edge.Access;

/// <summary>
/// What the edge decided about one visitor request before forwarding it: its id (on every error page
/// and log line about it) and the rules of its host. Set by <see cref="EdgeAccessMiddleware"/>.
/// </summary>
internal sealed class EdgeRequestFeature
{
    // Ids are a per-process prefix and a counter: unique within a run, short enough to read out on a call.
    private static readonly string IdPrefix = Convert.ToHexString(BitConverter.GetBytes(Environment.TickCount64))[..8].ToLowerInvariant();
    private static long s_requestNumber;

    public EdgeRequestFeature(string requestId, HostPolicy policy)
    {
        RequestId = requestId;
        Policy = policy;
    }

    public string RequestId { get; }

    public HostPolicy Policy { get; }

    public static string NextRequestId() =>
        IdPrefix + "-" + Interlocked.Increment(ref s_requestNumber).ToString("x", CultureInfo.InvariantCulture);

    /// <summary>The request's feature; one with a fresh id and no restrictions when none was set.</summary>
    public static EdgeRequestFeature For(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var feature = context.Features.Get<EdgeRequestFeature>();
        if (feature is null)
        {
            feature = new EdgeRequestFeature(NextRequestId(), HostPolicy.Unrestricted);
            context.Features.Set(feature);
        }

        return feature;
    }
}
