namespace Tunnel.Edge.Access;

/// <summary>
/// Requests in flight per visitor hostname. An entry exists only while a request for its host is in
/// flight, so arbitrary Host headers cannot grow the table.
/// </summary>
internal sealed class HostConcurrency
{
    private readonly Dictionary<string, int> _inFlight = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Counts a request for <paramref name="host"/> unless <paramref name="limit"/> are already in flight.</summary>
    /// <returns>Whether the request may go on; if so, call <see cref="Exit"/> when it ends.</returns>
    public bool TryEnter(string host, int limit, out int inFlight)
    {
        lock (_lock)
        {
            _inFlight.TryGetValue(host, out inFlight);
            if (inFlight >= limit)
            {
                return false;
            }

            _inFlight[host] = inFlight + 1;
            return true;
        }
    }

    public void Exit(string host)
    {
        lock (_lock)
        {
            if (_inFlight.TryGetValue(host, out var count))
            {
                if (count <= 1)
                {
                    _inFlight.Remove(host);
                }
                else
                {
                    _inFlight[host] = count - 1;
                }
            }
        }
    }
}
