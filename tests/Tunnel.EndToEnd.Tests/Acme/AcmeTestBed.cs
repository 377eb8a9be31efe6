using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge;
using Tunnel.Edge.Certificates.Acme;
using Tunnel.Edge.Dns;
using Tunnel.Edge.Telemetry;
using Tunnel.EndToEnd.Tests.Dns;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests.Acme;

/// <summary>
/// An edge with ACME on, a real pebble as its CA and a real BIND named as the operator's DNS: zone
/// <c>example.test</c>, which pebble resolves every name through (its <c>-dnsserver</c>), and which the edge
/// writes to with signed RFC 2136 updates when the test gives it the zone (route records, DNS-01 TXT records).
/// The edge's visitor ports are picked before pebble starts, so pebble validates against them.
/// </summary>
internal sealed class AcmeTestBed : IAsyncDisposable
{
    private readonly List<(Meter Meter, string Instrument, Dictionary<string, string?> Tags)> _measurements = [];
    private readonly MeterListener _listener = new();
    private readonly string _storage;

    private AcmeTestBed(NamedProcess named, PebbleProcess? pebble, string storage)
    {
        Named = named;
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

    /// <summary>The operator's DNS server: pebble resolves through it; the edge writes to it when given the zone.</summary>
    public NamedProcess Named { get; }

    /// <summary><c>null</c> when the test runs the edge against a CA that is down.</summary>
    public PebbleProcess? Pebble { get; }

    public int HttpsPort => Harness.Edge.VisitorHttpsEndPoint!.Port;

    public AcmeCertificates Certificates => Harness.Edge.Services.GetRequiredService<AcmeCertificates>();

    /// <summary>
    /// Starts named with zone <c>example.test</c> holding <paramref name="zoneRecords"/> (<see cref="AddressRecord"/>),
    /// pebble resolving through it (unless <paramref name="pebbleDown"/>: the directory URL then names a port
    /// nothing listens on) and the edge. With <paramref name="dnsZone"/> the edge publishes in that zone
    /// (<c>Edge:Dns</c>: the named's address and TSIG key, then <paramref name="dnsZone"/> sets the patterns and
    /// targets), and so has a DNS-01 publisher.
    /// </summary>
    /// <param name="directoryInFront">Starts a hop in front of pebble (<see cref="RateLimitingCaProxy"/>) and returns the directory URL the edge gets instead of pebble's.</param>
    public static async Task<AcmeTestBed> StartAsync(string[] zoneRecords, Action<AcmeOptions> configureAcme, Action<EdgeOptions>? configureEdge = null,
        bool pebbleDown = false, int? validitySeconds = null, Action<string, string>? seedStorage = null, Action<DnsZoneOptions>? dnsZone = null,
        Func<PebbleProcess, Task<string>>? directoryInFront = null)
    {
        var httpPort = PebbleProcess.FreePort();
        var httpsPort = PebbleProcess.FreePort();
        var named = await NamedProcess.StartAsync(records: zoneRecords);
        PebbleProcess? pebble;
        try
        {
            pebble = pebbleDown ? null : await PebbleProcess.StartAsync(httpPort, httpsPort, new IPEndPoint(IPAddress.Loopback, named.Port), validitySeconds);
        }
        catch
        {
            await named.DisposeAsync();
            throw;
        }

        // A hop in front of pebble (RateLimitingCaProxy) gives the edge its own directory URL.
        var directoryUrl = pebble is not null && directoryInFront is not null ? await directoryInFront(pebble) : pebble?.DirectoryUrl;
        var storage = Directory.CreateTempSubdirectory("tunnel-acme-").FullName;
        if (pebble is not null)
        {
            seedStorage?.Invoke(storage, pebble.DirectoryUrl);
        }

        var bed = new AcmeTestBed(named, pebble, storage);
        try
        {
            bed.Harness = await TunnelHarness.StartAsync(o =>
            {
                o.VisitorHttpPort = httpPort;
                o.VisitorHttpsPort = httpsPort;
                o.Acme = new AcmeOptions
                {
                    DirectoryUrl = directoryUrl ?? $"https://127.0.0.1:{PebbleProcess.FreePort()}/dir",
                    DirectoryCertificateAuthority = pebble?.DirectoryCaPath,
                    StoragePath = storage,
                    AcceptTermsOfService = true,
                    Contacts = ["mailto:ops@example.test"],

                    // Quick retries: a test sees a second attempt in seconds, not minutes.
                    RetryDelay = TimeSpan.FromSeconds(1),
                    MaxRetryDelay = TimeSpan.FromSeconds(5),
                    OrderTimeout = TimeSpan.FromSeconds(30),

                    // named is the zone's only server: nothing to propagate to.
                    DnsPropagationDelay = TimeSpan.Zero,
                };
                configureAcme(o.Acme);
                if (dnsZone is not null)
                {
                    DnsRecordTests.UseZone(o, named, zone =>
                    {
                        zone.Target = null;
                        zone.Addresses = [];
                        zone.Patterns = [];
                        dnsZone(zone);
                    });
                }

                configureEdge?.Invoke(o);
            });
        }
        catch
        {
            // named, pebble and the storage go with the bed when the edge cannot start.
            await bed.DisposeAsync();
            throw;
        }

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

        await Named.DisposeAsync();
        try
        {
            Directory.Delete(_storage, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The zone file line that points <paramref name="name"/> at <paramref name="address"/> (127.0.0.1: the edge).</summary>
    public static string AddressRecord(string name, string address = "127.0.0.1") => $"{name.TrimEnd('.')}. 60 IN A {IPAddress.Parse(address)}";
}
