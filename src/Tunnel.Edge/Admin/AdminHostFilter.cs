using System.Net;
using Microsoft.AspNetCore.Http;

namespace Tunnel.Edge.Admin;

/// <summary>
/// Which Host values the admin port's pages answer, against DNS rebinding: a web page on another site
/// can make a browser on the operator's machine send requests to the admin port under the attacker's
/// own name, and read the answers. Answered are the loopback names and addresses, the address the
/// request arrived on (and <see cref="EdgeOptions.AdminAddress"/>), and the names of
/// <see cref="EdgeOptions.AdminHosts"/>; an IP address in Host is never a rebinding, a name is.
/// </summary>
internal sealed class AdminHostFilter
{
    private readonly IPAddress? _listenAddress;
    private readonly HashSet<string> _names;

    public AdminHostFilter(EdgeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _listenAddress = IPAddress.TryParse(options.AdminAddress, out var address) ? address : null;
        _names = new HashSet<string>(options.AdminHosts.Select(Normalize), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Whether the request's Host is one the admin port answers to.</summary>
    public bool Allows(HttpContext context)
    {
        var host = context.Request.Host;
        if (!host.HasValue)
        {
            // HTTP/1.0 without Host: no browser sends that, so no page can.
            return true;
        }

        var name = Normalize(host.Host);
        if (IPAddress.TryParse(name, out var address))
        {
            address = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
            var local = context.Connection.LocalIpAddress is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : context.Connection.LocalIpAddress;
            return IPAddress.IsLoopback(address) || address.Equals(_listenAddress) || address.Equals(local);
        }

        // RFC 6761: localhost and names under it are loopback, answered without DNS.
        return name.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase)
            || _names.Contains(name);
    }

    private static string Normalize(string host) => host.Trim().TrimStart('[').TrimEnd(']').TrimEnd('.');
}
