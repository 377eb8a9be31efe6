using System.Net;
using System.Text;

namespace Tunnel.Testing;

/// <summary>
/// Steady visitor traffic against an edge: workers alternating GET / and POST /echo, each response
/// checked. Bounded: it runs until stopped or <c>maxDuration</c> passes.
/// </summary>
public sealed class Load : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly Task[] _workers;
    private readonly HttpClient _client;
    private int _succeeded;
    private readonly List<string> _failures = [];

    private Load(int visitorPort, string host, int workers, TimeSpan maxDuration)
    {
        _stop = new CancellationTokenSource(maxDuration);
        _client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromSeconds(30) };
        _workers = Enumerable.Range(0, workers).Select(w => Task.Run(() => WorkAsync(w, visitorPort, host))).ToArray();
    }

    public int Succeeded => Volatile.Read(ref _succeeded);

    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (_failures)
            {
                return _failures.ToArray();
            }
        }
    }

    public static Load Start(int visitorPort, string host, int workers = 4, TimeSpan? maxDuration = null) =>
        new(visitorPort, host, workers, maxDuration ?? TimeSpan.FromSeconds(60));

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _client.Dispose();
        _stop.Dispose();
    }

    private async Task WorkAsync(int worker, int visitorPort, string host)
    {
        var n = 0;
        while (!_stop.IsCancellationRequested)
        {
            n++;
            var post = n % 2 == 0;
            var payload = $"worker {worker} request {n}";
            using var request = new HttpRequestMessage(post ? HttpMethod.Post : HttpMethod.Get, $"http://127.0.0.1:{visitorPort}/{(post ? "echo" : "")}")
            {
                Headers = { Host = host },
                Content = post ? new StringContent(payload, Encoding.UTF8) : null,
            };
            try
            {
                using var response = await _client.SendAsync(request, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                if (response.StatusCode != HttpStatusCode.OK || (post && body != payload))
                {
                    Fail($"{request.Method} -> {(int)response.StatusCode}: {body[..Math.Min(body.Length, 300)]}");
                    continue;
                }

                Interlocked.Increment(ref _succeeded);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                Fail($"{request.Method} -> {ex.GetType().Name}: {ex.Message}");
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
