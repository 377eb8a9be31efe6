using System.Net;

namespace Tunnel.Edge.Dial.Discovery;

/// <summary>One SRV record's target (RFC 2782).</summary>
/// <param name="Host">The target host name, without a trailing dot.</param>
/// <param name="Port">The port on the target.</param>
/// <param name="Priority">Lower is tried first.</param>
/// <param name="Weight">Among targets of one priority, the relative share of selections; 0 means almost never first.</param>
/// <param name="Addresses">The target's addresses when known, IPv4 first; empty to resolve <paramref name="Host"/> when dialing.</param>
internal sealed record SrvTarget(string Host, int Port, int Priority, int Weight, IReadOnlyList<IPAddress> Addresses);
