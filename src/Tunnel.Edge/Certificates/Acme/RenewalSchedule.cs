namespace Tunnel.Edge.Certificates.Acme;

/// <summary>When to renew a certificate and when to try again after a failure.</summary>
internal static class RenewalSchedule
{
    // The jitter spreads renewals over a tenth of the lifetime before the fraction (a week for 90-day
    // certificates), so certificates issued together do not all renew in the same minute.
    private const double JitterFraction = 0.1;

    /// <summary>
    /// The renewal time: a random moment of the CA's window (RFC 9773) when it gave one, else
    /// <paramref name="fraction"/> of the lifetime minus a random jitter of up to a tenth of it.
    /// <paramref name="random"/> is in [0, 1).
    /// </summary>
    public static DateTimeOffset RenewAt(DateTimeOffset notBefore, DateTimeOffset notAfter, (DateTimeOffset Start, DateTimeOffset End)? window, double fraction, double random)
    {
        if (window is { } w && w.End > w.Start)
        {
            return w.Start + ((w.End - w.Start) * random);
        }

        var lifetime = notAfter - notBefore;
        return notBefore + (lifetime * fraction) - (lifetime * JitterFraction * random);
    }

    /// <summary>
    /// The wait after the <paramref name="failures"/>-th failure in a row: the base delay doubled each time up
    /// to the cap, with up to a quarter more at random, and never less than the CA's Retry-After.
    /// </summary>
    public static TimeSpan Backoff(int failures, TimeSpan baseDelay, TimeSpan maxDelay, TimeSpan? retryAfter, double random)
    {
        var doubled = baseDelay.Ticks * Math.Pow(2, Math.Min(Math.Max(failures - 1, 0), 30));
        var delay = TimeSpan.FromTicks((long)Math.Min(doubled, maxDelay.Ticks));
        delay += delay * 0.25 * random;
        return retryAfter is { } asked && asked > delay ? asked : delay;
    }
}
