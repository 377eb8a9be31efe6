using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using Tunnel.Protocol;

namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// Where an edge's tunnel port is: a host name or IP address and a port, and, when discovery already
/// resolved them (SRV answers carry A/AAAA records), the IP addresses to connect to.
/// </summary>
/// <param name="Host">A DNS name or an IP address (IPv6 without brackets). It is also the TLS server name by default.</param>
/// <param name="Port">The tunnel port.</param>
/// <remarks>Two addresses are equal when host (case-insensitive) and port are; <see cref="Addresses"/> and <see cref="Priority"/> do not count.</remarks>
public sealed record EdgeAddress(string Host, int Port)
{
    /// <summary>IP addresses of <see cref="Host"/> found by discovery; empty to resolve <see cref="Host"/> when dialing.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; init; } = [];

    /// <summary>
    /// The SRV priority the edge was listed with: connections use the lowest-numbered priority that has
    /// a usable edge (RFC 2782). Zero for edges listed by address.
    /// </summary>
    public int Priority { get; init; }

    /// <inheritdoc />
    public bool Equals(EdgeAddress? other) =>
        other is not null && Port == other.Port && string.Equals(Host, other.Host, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(StringComparer.OrdinalIgnoreCase.GetHashCode(Host), Port);

    /// <summary>Parses <c>host</c>, <c>host:port</c>, <c>1.2.3.4:port</c> or <c>[::1]:port</c>; the port defaults to 7844.</summary>
    /// <exception cref="FormatException">The text is not an edge address.</exception>
    public static EdgeAddress Parse(string text) =>
        TryParse(text, out var address, out var error) ? address : throw new FormatException(error);

    /// <summary>Parses an edge address, returning a reason when it is not one.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out EdgeAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "An edge address is empty.";
            return false;
        }

        var value = text.Trim();
        string host;
        var port = TunnelProtocol.DefaultTunnelPort;
        string? portText = null;
        if (value.StartsWith('['))
        {
            var close = value.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"The edge address '{value}' has no closing ']'.";
                return false;
            }

            host = value[1..close];
            var rest = value[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':')
                {
                    error = $"The edge address '{value}' has text after ']' that is not a port.";
                    return false;
                }

                portText = rest[1..];
            }
        }
        else
        {
            var colon = value.LastIndexOf(':');
            if (colon >= 0 && value.IndexOf(':', StringComparison.Ordinal) == colon)
            {
                host = value[..colon];
                portText = value[(colon + 1)..];
            }
            else
            {
                // No colon, or several (a bare IPv6 address): all of it is the host.
                host = value;
            }
        }

        if (portText is not null && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
        {
            error = $"The edge address '{value}' has an invalid port '{portText}'.";
            return false;
        }

        if (host.Length == 0)
        {
            error = $"The edge address '{value}' has no host.";
            return false;
        }

        address = new EdgeAddress(host, port);
        error = null;
        return true;
    }

    /// <inheritdoc />
    public override string ToString() =>
        Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
