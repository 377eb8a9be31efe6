using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.Edge.Tests.Acme;

/// <summary>Ordering and renewal of <see cref="AcmeCertificates"/>, on a fake clock, with a fake CA.</summary>
public class AcmeCertificatesTests
{
    private const string Name = "site.example.com";
    private static readonly TimeSpan Lifetime = TimeSpan.FromDays(90);

    // Real time only bounds how long the test waits for the background loop to act on the fake clock.
    private static readonly TimeSpan LoopWait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Renews_at_two_thirds_of_the_lifetime_less_jitter_and_serves_the_old_certificate_until_the_new_one_is_in_place()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ca = new FakeCa(time);
        await using var bed = await Bed.StartAsync(time, ca, random: 0.5);
        await bed.WaitForOrdersAsync(1);
        var first = bed.Served();

        // 2/3 of 90 days, less half of the jitter's tenth of the lifetime.
        var notBefore = ca.Issued[0].NotBefore;
        var expected = notBefore + (Lifetime * 2 / 3) - (Lifetime * 0.1 * 0.5);
        Assert.Equal(expected, Assert.Single(bed.Certificates.Status()).NextAttempt);

        time.Advance(expected - time.GetUtcNow() - TimeSpan.FromSeconds(1));
        Assert.Same(first, bed.Served());
        time.Advance(TimeSpan.FromSeconds(1));
        await bed.WaitForOrdersAsync(2);
        await Poll.UntilAsync(() => !ReferenceEquals(first, bed.Served()), LoopWait, "the renewed certificate serves");
        Assert.Equal(ca.Issued[1].Serial, bed.Served()!.TargetCertificate.SerialNumber);
        Assert.Equal(ca.Issued[0].Certificate.Thumbprint, ca.Replacing[1]?.Thumbprint);
    }

    [Fact]
    public async Task A_failed_renewal_is_retried_with_backoff_and_never_takes_the_working_certificate_away()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ca = new FakeCa(time);
        await using var bed = await Bed.StartAsync(time, ca, random: 0);
        await bed.WaitForOrdersAsync(1);
        var working = bed.Served();

        ca.FailWith = new AcmeException(AcmeException.ErrorNamespace + "rateLimited", "too many certificates", 429, retryAfter: TimeSpan.FromMinutes(30));
        time.Advance(Assert.Single(bed.Certificates.Status()).NextAttempt!.Value - time.GetUtcNow());
        await bed.WaitForOrdersAsync(2);
        await Poll.UntilAsync(() => bed.Certificates.Status()[0].LastError is not null, LoopWait, "the failure is recorded");
        var status = bed.Certificates.Status()[0];
        Assert.Contains("rateLimited: too many certificates", status.LastError, StringComparison.Ordinal);
        Assert.Same(working, bed.Served());

        // The CA's Retry-After (30 min) is longer than the first backoff (1 min): it wins.
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(30), status.NextAttempt);

        ca.FailWith = new AcmeException("connection_refused", "down");
        time.Advance(TimeSpan.FromMinutes(30));
        await bed.WaitForOrdersAsync(3);
        await Poll.UntilAsync(() => bed.Certificates.Status()[0].LastError?.Contains("down", StringComparison.Ordinal) == true, LoopWait, "the second failure is recorded");

        // Second failure in a row: twice the base delay.
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(2), bed.Certificates.Status()[0].NextAttempt);
        Assert.Same(working, bed.Served());

        ca.FailWith = null;
        time.Advance(TimeSpan.FromMinutes(2));
        await bed.WaitForOrdersAsync(4);
        await Poll.UntilAsync(() => !ReferenceEquals(working, bed.Served()), LoopWait, "the renewed certificate serves");
        Assert.Null(bed.Certificates.Status()[0].LastError);
    }

    [Fact]
    public async Task Renews_inside_the_window_the_CA_suggests_when_it_offers_renewal_information()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var start = time.GetUtcNow() + TimeSpan.FromDays(10);
        var ca = new FakeCa(time) { Window = (start, start + TimeSpan.FromDays(2)) };
        await using var bed = await Bed.StartAsync(time, ca, random: 0.25);
        await bed.WaitForOrdersAsync(1);
        await Poll.UntilAsync(() => bed.Certificates.Status()[0].NotAfter is not null, LoopWait, "the certificate is in place");
        Assert.Equal(start + TimeSpan.FromHours(12), bed.Certificates.Status()[0].NextAttempt);
    }

    [Fact]
    public async Task On_demand_orders_only_for_routed_allowed_names_not_covered_by_a_file_and_within_the_hourly_rate()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ca = new FakeCa(time);
        var options = new AcmeOptions
        {
            DirectoryUrl = "https://ca.example/dir",
            OnDemand = true,
            OnDemandAllowedNames = ["*.apps.example.com"],
            OnDemandOrdersPerHour = 1,
            OnDemandHandshakeWait = TimeSpan.Zero,
        };
        string[] routed = ["a.apps.example.com", "b.apps.example.com", "other.example.com", "file.apps.example.com"];
        using var certificates = new AcmeCertificates(options, ca, store: null, _ => { }, routed.Contains, time, NullLogger.Instance, metrics: null,
            coveredByFile: name => name == "file.apps.example.com");
        await certificates.StartAsync(CancellationToken.None);

        foreach (var name in (string[])["unrouted.apps.example.com", "other.example.com", "file.apps.example.com", "a.apps.example.com", "b.apps.example.com"])
        {
            await certificates.BeforeHandshakeAsync(name);
        }

        await Poll.UntilAsync(() => ca.Orders == 1, LoopWait, "one order is placed");
        Assert.Equal(["a.apps.example.com"], certificates.Status().SelectMany(s => s.Names));

        // An hour later the rate has room again.
        time.Advance(TimeSpan.FromHours(1));
        await certificates.BeforeHandshakeAsync("b.apps.example.com");
        await Poll.UntilAsync(() => ca.Orders == 2, LoopWait, "the second name is ordered");
        await certificates.StopAsync(CancellationToken.None);
    }

    [Theory]
    [InlineData(1, 0.0, 60)]
    [InlineData(2, 0.0, 120)]
    [InlineData(3, 1.0, 300)]
    [InlineData(30, 0.0, 3600)]
    public void Backoff_doubles_from_the_base_delay_up_to_the_cap_with_up_to_a_quarter_of_jitter(int failures, double random, int expectedSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), RenewalSchedule.Backoff(failures, TimeSpan.FromMinutes(1), TimeSpan.FromHours(1), null, random));

    [Fact]
    public async Task In_a_cluster_a_name_another_edge_is_ordering_is_not_ordered_here_and_the_certificate_it_shares_serves()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ca = new FakeCa(time);
        var share = new FakeShare { Holder = "edge-b" };
        await using var bed = await Bed.StartAsync(time, ca, random: 0, share);
        await Poll.UntilAsync(() => bed.Certificates.Status()[0].Source == "being ordered by edge edge-b", LoopWait, "the status names the edge ordering");
        Assert.Equal(0, ca.Orders);
        Assert.Null(bed.Served());

        var issuedElsewhere = await new FakeCa(time).OrderAsync([Name], null, CancellationToken.None);
        share.Raise(new Dictionary<string, IssuedPem> { [Name] = issuedElsewhere });
        await Poll.UntilAsync(() => bed.Served() is not null, LoopWait, "the shared certificate serves");
        var status = bed.Certificates.Status()[0];
        Assert.Equal("shared by the cluster", status.Source);
        Assert.NotNull(status.NextAttempt);
        Assert.Equal(0, ca.Orders);
        Assert.Empty(share.Published);
    }

    [Fact]
    public async Task In_a_cluster_the_edge_holding_the_lock_orders_shares_the_certificate_and_gives_the_lock_back()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ca = new FakeCa(time);
        var share = new FakeShare();
        await using var bed = await Bed.StartAsync(time, ca, random: 0, share);
        await bed.WaitForOrdersAsync(1);
        await Poll.UntilAsync(() => share.Unlocked.Contains(Name), LoopWait, "the lock is given back");

        var published = Assert.Single(share.Published);
        Assert.Equal(Name, published.Id);
        Assert.Equal(bed.Served()!.TargetCertificate.Thumbprint, ca.Issued[0].Certificate.Thumbprint);
        Assert.Equal("ordered by this edge", bed.Certificates.Status()[0].Source);
    }

    [Fact]
    public async Task A_shared_certificate_filed_under_a_name_it_does_not_cover_is_not_served()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var share = new FakeShare { Holder = "edge-b" };
        await using var bed = await Bed.StartAsync(time, new FakeCa(time), random: 0, share);
        await Poll.UntilAsync(() => bed.Certificates.Status()[0].Source is not null, LoopWait, "the loop looked at the lock");

        var forAnotherName = await new FakeCa(time).OrderAsync(["evil.example.com"], null, CancellationToken.None);
        share.Raise(new Dictionary<string, IssuedPem> { [Name] = forAnotherName, ["../escape"] = forAnotherName });
        Assert.Null(bed.Served());
        Assert.DoesNotContain(bed.Certificates.Status(), s => s.Names.Contains("evil.example.com"));
    }

    /// <summary>A fake cluster share: a lock held by <see cref="Holder"/> (or free), and what was published.</summary>
    private sealed class FakeShare : IAcmeShare
    {
        private AcmeShared _current = AcmeShared.Empty;

        public event Action<AcmeShared>? Changed;

        public string? Holder { get; set; }

        public List<(string Id, IssuedPem Pem)> Published { get; } = [];

        public List<string> Unlocked { get; } = [];

        public string EdgeName => "edge-a";

        public TimeSpan AnswerPropagation => TimeSpan.Zero;

        public AcmeShared Current => _current;

        public void Raise(Dictionary<string, IssuedPem> certificates)
        {
            _current = AcmeShared.Empty with { Certificates = certificates };
            Changed?.Invoke(_current);
        }

        public Task PublishAnswerAsync(AcmeSharedAnswer answer, CancellationToken ct) => Task.CompletedTask;

        public Task WithdrawAnswerAsync(AcmeSharedAnswer answer, CancellationToken ct) => Task.CompletedTask;

        public Task<string?> TryLockOrderAsync(string id, CancellationToken ct) => Task.FromResult(Holder);

        public Task UnlockOrderAsync(string id, CancellationToken ct)
        {
            lock (Unlocked)
            {
                Unlocked.Add(id);
            }

            return Task.CompletedTask;
        }

        public Task PublishCertificateAsync(string id, IssuedPem pem, CancellationToken ct)
        {
            Published.Add((id, pem));
            return Task.CompletedTask;
        }

        public Task<IssuedPem?> ReadCertificateAsync(string id, CancellationToken ct) => Task.FromResult<IssuedPem?>(null);
    }

    /// <summary>A fake CA: self-signed certificates for the asked names, dated by the fake clock; fails while <see cref="FailWith"/> is set.</summary>
    private sealed class FakeCa(TimeProvider time) : ICertificateOrders
    {
        public List<(DateTimeOffset NotBefore, string Serial, X509Certificate2 Certificate)> Issued { get; } = [];

        public List<X509Certificate2?> Replacing { get; } = [];

        public AcmeException? FailWith { get; set; }

        public (DateTimeOffset, DateTimeOffset)? Window { get; set; }

        public int Orders { get; private set; }

        public Task<IssuedPem> OrderAsync(IReadOnlyList<string> names, X509Certificate2? replacing, CancellationToken ct)
        {
            lock (this)
            {
                Orders++;
                Replacing.Add(replacing);
                if (FailWith is { } error)
                {
                    throw error;
                }

                using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                var request = new CertificateRequest("CN=" + names[0], key, HashAlgorithmName.SHA256);
                var san = new SubjectAlternativeNameBuilder();
                foreach (var name in names)
                {
                    san.AddDnsName(name);
                }

                request.CertificateExtensions.Add(san.Build());
                var notBefore = new DateTimeOffset(time.GetUtcNow().UtcDateTime.Ticks / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero);
                var certificate = request.CreateSelfSigned(notBefore, notBefore + Lifetime);
                Issued.Add((notBefore, certificate.SerialNumber, certificate));
                return Task.FromResult(new IssuedPem(certificate.ExportCertificatePem() + "\n", key.ExportPkcs8PrivateKeyPem() + "\n"));
            }
        }

        public Task<(DateTimeOffset Start, DateTimeOffset End)?> RenewalWindowAsync(X509Certificate2 certificate, CancellationToken ct) => Task.FromResult(Window);
    }

    private sealed class Bed : IAsyncDisposable
    {
        private readonly FakeCa _ca;
        private IReadOnlyDictionary<string, SslStreamCertificateContext> _served = new Dictionary<string, SslStreamCertificateContext>();

        private Bed(FakeCa ca, AcmeCertificates certificates)
        {
            _ca = ca;
            Certificates = certificates;
        }

        public AcmeCertificates Certificates { get; }

        public static async Task<Bed> StartAsync(FakeTimeProvider time, FakeCa ca, double random, IAcmeShare? share = null)
        {
            Bed? bed = null;
            var options = new AcmeOptions { DirectoryUrl = "https://ca.example/dir", Names = [Name] };
            var certificates = new AcmeCertificates(options, ca, store: null, served => bed!._served = served, _ => true, time,
                NullLogger.Instance, metrics: null, random: () => random, share: share);
            bed = new Bed(ca, certificates);
            await certificates.StartAsync(CancellationToken.None);
            return bed;
        }

        public SslStreamCertificateContext? Served() => _served.GetValueOrDefault(Name);

        public Task WaitForOrdersAsync(int count) => Poll.UntilAsync(() => _ca.Orders >= count && (count > _ca.Issued.Count || Served() is not null), LoopWait, $"{count} orders were placed");

        public async ValueTask DisposeAsync()
        {
            await Certificates.StopAsync(CancellationToken.None);
            Certificates.Dispose();
        }
    }

    private static class Poll
    {
        public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!condition())
            {
                Assert.True(DateTime.UtcNow < deadline, $"Timed out after {timeout.TotalSeconds} s waiting until {what}.");
                await Task.Delay(10);
            }
        }
    }
}
