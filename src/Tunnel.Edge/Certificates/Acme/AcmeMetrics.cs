using System.Diagnostics.Metrics;
using Tunnel.Edge.Telemetry;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The ACME instruments, on the edge's meter: orders by result and reason, on-demand refusals by reason, and
/// each managed certificate's days to expiry.
/// </summary>
internal sealed class AcmeMetrics
{
    private readonly Counter<long> _orders;
    private readonly Counter<long> _onDemandRefused;

    public AcmeMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        Meter = meterFactory.Create(EdgeMetrics.MeterName);
        _orders = Meter.CreateCounter<long>("tunnel.edge.acme.orders", "{order}",
            "ACME orders by result (issued, failed) and, for failures, reason (the ACME problem type without its namespace, such as rateLimited or rejectedIdentifier, or connection_refused, timeout, tls).");
        _onDemandRefused = Meter.CreateCounter<long>("tunnel.edge.acme.on_demand.refused", "{handshake}",
            "Visitor handshakes for a name without a certificate that got no on-demand order, by reason (no_route, not_allowed, rate).");
    }

    /// <summary>The meter (for the expiry gauge's registration).</summary>
    public Meter Meter { get; }

    /// <summary>Registers the days-to-expiry gauge over <paramref name="certificates"/>.</summary>
    public void ObserveExpiry(Func<IEnumerable<(string Names, double Days)>> certificates) =>
        Meter.CreateObservableGauge("tunnel.edge.acme.certificate.expiry", () => certificates().Select(c =>
            new Measurement<double>(c.Days, new KeyValuePair<string, object?>("tunnel.certificate.names", c.Names))), "d",
            "Days until each ACME certificate expires, by tunnel.certificate.names; negative once expired.");

    public void OrderIssued() => _orders.Add(1, new KeyValuePair<string, object?>("result", "issued"));

    public void OrderFailed(string reason) =>
        _orders.Add(1, new KeyValuePair<string, object?>("result", "failed"), new KeyValuePair<string, object?>("reason", reason));

    public void OnDemandRefused(string reason) => _onDemandRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
