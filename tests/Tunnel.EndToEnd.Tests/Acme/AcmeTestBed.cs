using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge;
using Tunnel.Edge.Certificates.Acme;
using Tunnel.Edge.Telemetry;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>
/// An edge with ACME on, a real pebble as its CA and a real dnsmasq resolving the test names for pebble.
/// The edge's visitor ports are picked before pebble starts, so pebble validates against them.
/// </summary>
internal sealed class AcmeTestBed : IAsyncDisposable
{
    private readonly List<(Meter Meter, string Instrument, Dictionary<string, string?> Tags)> _measurements = [];
    private readonly MeterListener _listener = new();
    private readonly Dnsmasq _dns;
    private readonly string _storage;

    private AcmeTestBed(Dnsmasq dns, PebbleProcess? pebble, string storage)
    {
        _dns = dns;
        Pebble = pebble;
        _storage = storage;
        _listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EdgeMetrics.MeterName && instrument.Name.StartsWith("tunnel.edge.acme.", StringComparison.Ordinal))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, _, tags, _) =>
        {
            var copy = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var tag in tags)
            {
                copy[tag.Key] = tag.Value?.ToString();
            }

            lock (_measurements)
            {
                _measurements.Add((instrument.Meter, instrument.Name, copy));
            }
        });
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
        {
            var copy = new Dictionary<string, string?>(StringComparer.Ordinal) { ["value"] = value.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            foreach (var tag in tags)
            {
                copy[tag.Key] = tag.Value?.ToString();
            }

            lock (_measurements)
            {
                _measurements.Add((instrument.Meter, instrument.Name, copy));
            }
        });
        _listener.Start();
    }

    /// <summary>Reads the observable gauges now (days to expiry), so <see cref="Measurements"/> holds their values.</summary>
    public void ObserveGauges() => _listener.RecordObservableInstruments();

    public TunnelHarness Harness { get; private set; } = null!;

    /// <summary><c>null</c> when the test runs the edge against a CA that is down.</summary>
    public PebbleProcess? Pebble { get; }

    public int HttpsPort => Harness.Edge.VisitorHttpsEndPoint!.Port;

    public AcmeCertificates Certificates => Harness.Edge.Services.GetRequiredService<AcmeCertificates>();

    /// <summary>
    /// Starts dnsmasq with <paramref name="dnsRecords"/>, pebble (unless <paramref name="pebbleDown"/>: the
    /// directory URL then names a port nothing listens on; resolving through <paramref name="pebbleDns"/>
    /// when given, else the dnsmasq) and the edge.
    /// </summary>
    public static async Task<AcmeTestBed> StartAsync(string[] dnsRecords, Action<AcmeOptions> configureAcme, Action<EdgeOptions>? configureEdge = null,
        bool pebbleDown = false, int? validitySeconds = null, IPEndPoint? pebbleDns = null, Action<string, string>? seedStorage = null)
    {
        var httpPort = PebbleProcess.FreePort();
        var httpsPort = PebbleProcess.FreePort();
        var dns = await Dnsmasq.StartAsync(ttl: 1, dnsRecords);
        var pebble = pebbleDown ? null : await PebbleProcess.StartAsync(httpPort, httpsPort, pebbleDns ?? dns.EndPoint, validitySeconds);
        var storage = Directory.CreateTempSubdirectory("tunnel-acme-").FullName;
        if (pebble is not null)
        {
            seedStorage?.Invoke(storage, pebble.DirectoryUrl);
        }

        var bed = new AcmeTestBed(dns, pebble, storage);
        bed.Harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpPort = httpPort;
            o.VisitorHttpsPort = httpsPort;
            o.Acme = new AcmeOptions
            {
                DirectoryUrl = pebble?.DirectoryUrl ?? $"https://127.0.0.1:{PebbleProcess.FreePort()}/dir",
                DirectoryCertificateAuthority = pebble?.DirectoryCaPath,
                StoragePath = storage,
                AcceptTermsOfService = true,
                Contacts = ["mailto:ops@example.test"],

                // Quick retries: a test sees a second attempt in seconds, not minutes.
                RetryDelay = TimeSpan.FromSeconds(1),
                MaxRetryDelay = TimeSpan.FromSeconds(5),
                OrderTimeout = TimeSpan.FromSeconds(30),

                // named (or the test's DNS server) is the zone's only server: nothing to propagate to.
                DnsPropagationDelay = TimeSpan.Zero,
            };
            configureAcme(o.Acme);
            configureEdge?.Invoke(o);
        });
        return bed;
    }

    /// <summary>Waits until the edge serves an ACME certificate for <paramref name="name"/>; returns its status.</summary>
    public async Task<AcmeCertificateStatus> WaitForCertificateAsync(string name, TimeSpan timeout)
    {
        AcmeCertificateStatus? found = null;
        await Wait.UntilAsync(() => (found = Certificates.Status().FirstOrDefault(s => s.Names.Contains(name) && s.NotAfter is not null)) is not null,
            timeout, $"the edge holds an ACME certificate for {name} (status: {string.Join("; ", Certificates.Status())}; pebble: {Pebble?.Output[^Math.Min(Pebble.Output.Length, 2000)..]})");
        return found!;
    }

    /// <summary>The measurements this edge's ACME instruments recorded: (instrument, tags).</summary>
    public IReadOnlyList<(string Instrument, Dictionary<string, string?> Tags)> Measurements()
    {
        var meter = Harness.Edge.Services.GetRequiredService<AcmeMetrics>().Meter;
        lock (_measurements)
        {
            return [.. _measurements.Where(m => ReferenceEquals(m.Meter, meter)).Select(m => (m.Instrument, m.Tags))];
        }
    }

    /// <summary>curl over the edge's HTTPS port for <paramref name="name"/>, verifying against <paramref name="caPath"/>.</summary>
    public Task<Cli.Result> CurlAsync(string name, string caPath, string path = "/") =>
        Cli.RunAsync("curl", ["-sS", "--fail", "--resolve", $"{name}:{HttpsPort}:127.0.0.1", "--cacert", caPath, $"https://{name}:{HttpsPort}{path}"], TimeSpan.FromSeconds(30));

    public async ValueTask DisposeAsync()
    {
        _listener.Dispose();
        if (Harness is not null)
        {
            await Harness.DisposeAsync();
        }

        if (Pebble is not null)
        {
            await Pebble.DisposeAsync();
        }

        _dns.Dispose();
        try
        {
            Directory.Delete(_storage, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The dnsmasq record that points <paramref name="name"/> at <paramref name="address"/> (127.0.0.1: the edge).</summary>
    public static string HostRecord(string name, string address = "127.0.0.1") => $"--host-record={name},{IPAddress.Parse(address)}";
}
