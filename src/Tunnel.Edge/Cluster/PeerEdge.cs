using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// Another edge of the cluster as this one reaches it: one long-lived HTTP/2 connection over mutual
/// TLS (more only when its streams run out), and the smoothed round-trip time of the probes sent over it.
/// </summary>
internal sealed class PeerEdge : IDisposable
{
    // The weight of the newest probe in the smoothed RTT: a slowed path shows within a few probes,
    // one slow probe does not send all traffic elsewhere.
    private const double RttSmoothing = 0.3;

    // A connection that answers no PING for this long is dropped, so a dead peer fails fast.
    private static readonly TimeSpan KeepAlivePingDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan KeepAlivePingTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    private readonly Lock _lock = new();
    private double _rttSeconds = double.NaN;
    private int _consecutiveFailures;
    private long _forwarded;

    // The certificate and the trusted CAs are the set's current ones at each new connection: a renewed
    // certificate or a retired CA applies from the next connection on.
    internal PeerEdge(EdgeRecord record, PeerSet set)
    {
        Record = record;
        BaseUri = new Uri("https://" + record.Address + "/");
        var expectedHost = BaseUri.Host.Trim('[', ']');
        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                LocalCertificateSelectionCallback = (_, _, _, _, _) => set.Certificate,
                RemoteCertificateValidationCallback = (_, remote, _, _) =>
                    remote is X509Certificate2 peer && PeerCertificates.IsPeerCertificate(peer, set.TrustedCas, out _) && peer.MatchesHostname(expectedHost),
            },
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = KeepAlivePingDelay,
            KeepAlivePingTimeout = KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            ConnectTimeout = ConnectTimeout,
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            // The forwarder injects the edge span's trace context itself, as it does down tunnels.
            ActivityHeadersPropagator = System.Diagnostics.DistributedContextPropagator.CreateNoOutputPropagator(),
        });
    }

    /// <summary>The peer as it registered itself.</summary>
    public EdgeRecord Record { get; }

    /// <summary>The peer's name.</summary>
    public string Name => Record.Name;

    /// <summary><c>https://address/</c> on the peer's inter-edge port.</summary>
    public Uri BaseUri { get; }

    /// <summary>Sends requests to the peer over its pooled HTTP/2 connection.</summary>
    public HttpMessageInvoker Invoker { get; }

    /// <summary>The smoothed round-trip time of the probes, or <c>null</c> before the first answer.</summary>
    public TimeSpan? Rtt
    {
        get
        {
            lock (_lock)
            {
                return double.IsNaN(_rttSeconds) ? null : TimeSpan.FromSeconds(_rttSeconds);
            }
        }
    }

    /// <summary>Whether the last probe or forwarded request reached the peer.</summary>
    public bool IsReachable => Volatile.Read(ref _consecutiveFailures) == 0;

    /// <summary>Requests this edge forwarded to the peer.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Sends one probe and folds its round trip into <see cref="Rtt"/>; returns whether it was answered.</summary>
    internal async Task<bool> ProbeAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(BaseUri, PeerRequests.ProbePath))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var response = await Invoker.SendAsync(request, deadline.Token).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.NoContent)
            {
                Failed();
                return false;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            Failed();
            return false;
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        lock (_lock)
        {
            _rttSeconds = double.IsNaN(_rttSeconds) ? seconds : (RttSmoothing * seconds) + ((1 - RttSmoothing) * _rttSeconds);
        }

        Volatile.Write(ref _consecutiveFailures, 0);
        return true;
    }

    /// <summary>A request could not reach the peer: choose others until a probe gets through again.</summary>
    internal void Failed() => Interlocked.Increment(ref _consecutiveFailures);

    internal void CountForwarded() => Interlocked.Increment(ref _forwarded);

    /// <inheritdoc />
    public void Dispose() => Invoker.Dispose();
}
