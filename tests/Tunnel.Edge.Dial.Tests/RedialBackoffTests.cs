using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Redial;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Dial.Tests;

public class RedialBackoffTests
{
    private static readonly RedialBackoffOptions Options = new()
    {
        BaseDelay = TimeSpan.FromSeconds(1),
        MaxDelay = TimeSpan.FromSeconds(30),
        StablePeriod = TimeSpan.FromSeconds(30),
    };

    [Fact]
    public void First_retry_is_quick_and_later_ones_grow_up_to_the_cap()
    {
        var backoff = new RedialBackoff(Options, new ManualTime(), new Random(1));
        var failure = new EdgeDialException(DialPhase.Tcp, "connection_refused", "refused");

        Assert.InRange(backoff.NextDelay(failure), TimeSpan.Zero, TimeSpan.FromMilliseconds(250));
        for (var attempt = 1; attempt < 40; attempt++)
        {
            var expectedBound = TimeSpan.FromTicks(Math.Min(Options.MaxDelay.Ticks, (long)(Options.BaseDelay.Ticks * Math.Pow(2, attempt))));
            Assert.InRange(backoff.NextDelay(failure), TimeSpan.Zero, expectedBound);
        }
    }

    [Fact]
    public void Delays_are_spread_by_full_jitter_not_in_lock_step()
    {
        // 500 origins that all failed six times: their next waits must not bunch together.
        var delays = Enumerable.Range(0, 500).Select(seed =>
        {
            var backoff = new RedialBackoff(Options, new ManualTime(), new Random(seed));
            for (var i = 0; i < 6; i++)
            {
                backoff.NextDelay(null);
            }

            return backoff.NextDelay(null).TotalSeconds;
        }).ToArray();

        Assert.All(delays, d => Assert.InRange(d, 0, 30));
        var buckets = delays.GroupBy(d => (int)(d / 3)).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(10, buckets.Count);
        Assert.All(buckets.Values, count => Assert.InRange(count, 20, 90));
    }

    [Fact]
    public void A_stable_connection_resets_the_schedule_and_a_short_one_does_not()
    {
        var time = new ManualTime();
        var backoff = new RedialBackoff(Options, time, new Random(2));
        for (var i = 0; i < 5; i++)
        {
            backoff.NextDelay(null);
        }

        backoff.OnConnected();
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.False(backoff.OnDisconnected());
        Assert.Equal(5, backoff.ConsecutiveFailures);

        backoff.OnConnected();
        time.Advance(Options.StablePeriod);
        Assert.True(backoff.OnDisconnected());
        Assert.Equal(0, backoff.ConsecutiveFailures);
        Assert.InRange(backoff.NextDelay(null), TimeSpan.Zero, TimeSpan.FromMilliseconds(250));
    }

    [Fact]
    public void By_default_a_tunnel_cut_after_serving_a_few_seconds_is_redialed_at_once_however_often_it_happens()
    {
        // A network that cuts the tunnel every 6 s, again and again (the fault suite's soak cuts one
        // every few seconds): each was up long enough to count, so no wait grows.
        var time = new ManualTime();
        var backoff = new RedialBackoff(new RedialBackoffOptions(), time, new Random(4));
        for (var cut = 0; cut < 20; cut++)
        {
            backoff.OnConnected();
            time.Advance(TimeSpan.FromSeconds(6));
            backoff.OnDisconnected();
            Assert.InRange(backoff.NextDelay(null), TimeSpan.Zero, TimeSpan.FromMilliseconds(250));
        }
    }

    [Fact]
    public void A_non_retryable_refusal_waits_near_the_cap()
    {
        var backoff = new RedialBackoff(Options, new ManualTime(), new Random(3));
        var refusal = new RegistrationRejectedException(new RegistrationRejected { Code = RejectionCodes.HostnameNotAuthorized, Message = "no", Retryable = false });
        for (var i = 0; i < 20; i++)
        {
            Assert.InRange(backoff.NextDelay(refusal), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(30));
        }
    }

    internal sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(_ticks);

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
