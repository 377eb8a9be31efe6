using System.Net;

namespace Tunnel.Edge.Access;

/// <summary>
/// Places held at once, in all and per source address (an IPv6 /64 counts as one address, as for the
/// rate limit): the count behind the visitor ports' connection caps and the tunnel port's handshake caps.
/// An address has an entry only while it holds a place, so addresses cannot grow the table. Thread-safe.
/// </summary>
/// <param name="max">Places in all; <c>null</c> for no cap.</param>
/// <param name="maxPerAddress">Places per address; <c>null</c> for no cap.</param>
internal sealed class AddressQuota(int? max, int? maxPerAddress)
{
    private readonly Dictionary<IPAddress, int> _byAddress = [];
    private readonly Lock _lock = new();
    private int _held;

    /// <summary>Which cap refused a place.</summary>
    public enum Refusal
    {
        /// <summary>None: the place was taken.</summary>
        None,

        /// <summary>Every place is held.</summary>
        Total,

        /// <summary>The address holds its share.</summary>
        PerAddress,
    }

    /// <summary>Places held now.</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>The address <paramref name="remote"/> counts under (IPv4-mapped as IPv4, IPv6 by /64); <c>null</c> for no IP endpoint.</summary>
    public static IPAddress? KeyOf(EndPoint? remote) =>
        remote is IPEndPoint { Address: var address }
            ? EdgeAccessMiddleware.RateLimitKey(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address)
            : null;

    /// <summary>Takes a place for <paramref name="key"/> (not counted per address when <c>null</c>), unless a cap refuses it.</summary>
    public Refusal TryEnter(IPAddress? key)
    {
        lock (_lock)
        {
            if (_held >= max)
            {
                return Refusal.Total;
            }

            if (key is not null)
            {
                var count = _byAddress.GetValueOrDefault(key);
                if (count >= maxPerAddress)
                {
                    return Refusal.PerAddress;
                }

                _byAddress[key] = count + 1;
            }

            _held++;
            return Refusal.None;
        }
    }

    /// <summary>Gives back a place that <see cref="TryEnter"/> took for <paramref name="key"/>.</summary>
    public void Exit(IPAddress? key)
    {
        lock (_lock)
        {
            _held--;
            if (key is not null && _byAddress.TryGetValue(key, out var count))
            {
                if (count <= 1)
                {
                    _byAddress.Remove(key);
                }
                else
                {
                    _byAddress[key] = count - 1;
                }
            }
        }
    }
}
