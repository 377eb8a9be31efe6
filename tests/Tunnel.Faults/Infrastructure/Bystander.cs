using System.Diagnostics;
using System.Net;

namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// Another visitor, for another hostname, asking one request after another while an attack runs: it
/// records every latency and failure, so a test can say whether the edge stayed responsive.
/// </summary>
public sealed class Bystander : IAsyncDisposable
{
    private readonly HttpClient _client;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly List<TimeSpan> _latencies = [];
    private readonly List<string> _failures = [];

    private Bystander(IPEndPoint edge, string host)
    {
        // Another visitor, from another address: the attacks come from 127.0.0.1, and the edge's caps per
        // visitor address must not be what keeps the bystander out.
        _client = Visitors.Client(edge, TimeSpan.FromSeconds(30), from: IPAddress.Parse("127.0.0.2"));
        _loop = Task.Run(() => LoopAsync(host));
    }

    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (_failures)
            {
                return [.. _failures];
            }
        }
    }

    public static Bystander Start(IPEndPoint edge, string host) => new(edge, host);

    /// <summary>Stops and returns the number of requests, the 99th percentile and the slowest.</summary>
    public async Task<(int Requests, TimeSpan P99, TimeSpan Slowest)> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop.WaitAsync(TimeSpan.FromSeconds(40));
        lock (_latencies)
        {
            if (_latencies.Count == 0)
            {
                return (0, TimeSpan.Zero, TimeSpan.Zero);
            }

            var sorted = _latencies.Order().ToArray();
            return (sorted.Length, sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(sorted.Length * 0.99) - 1)], sorted[^1]);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        _client.Dispose();
        _stop.Dispose();
    }

    private async Task LoopAsync(string host)
    {
        while (!_stop.IsCancellationRequested)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                using var response = await _client.GetAsync($"http://{host}/", CancellationToken.None);
                await response.Content.ReadAsStringAsync(CancellationToken.None);
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    Fail($"{(int)response.StatusCode}");
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                Fail($"{ex.GetType().Name}: {ex.Message}");
            }

            lock (_latencies)
            {
                _latencies.Add(Stopwatch.GetElapsedTime(started));
            }

            try
            {
                await Task.Delay(20, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Fail(string failure)
    {
        lock (_failures)
        {
            _failures.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {failure}");
        }
    }
}
