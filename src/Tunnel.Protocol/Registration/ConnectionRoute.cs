using System.Text.Json.Serialization;

namespace Tunnel.Protocol.Registration;

/// <summary>How a route takes its visitors when it takes whole connections rather than requests.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ConnectionMode>))]
public enum ConnectionMode
{
    /// <summary>
    /// HTTP passthrough: the edge routes a cleartext HTTP/1.1 or h2c connection by its first request's
    /// host and relays its bytes; the origin's server parses every request.
    /// </summary>
    Http,

    /// <summary>
    /// TLS passthrough: the edge routes a TLS connection by the ClientHello's server name and relays its
    /// bytes; the handshake ends in the origin, with the origin's certificate.
    /// </summary>
    Tls,

    /// <summary>A TCP route: every connection to the edge port configured for the hostname is relayed.</summary>
    Tcp,
}

/// <summary>A hostname whose visitor connections the origin asks to receive whole, and how.</summary>
/// <param name="Hostname">The hostname (exact or <c>*.</c> wildcard), covered by the credential as request hostnames are.</param>
/// <param name="Mode">How the edge routes and relays the connections.</param>
public sealed record ConnectionRoute(string Hostname, ConnectionMode Mode);

/// <summary>
/// The fields of the extended CONNECT (RFC 8441) the edge sends down a tunnel connection for each visitor
/// connection of a <see cref="ConnectionRoute"/>: <c>:protocol</c> names the mode, <c>:authority</c> the
/// hostname routed, and the fields below where the visitor came from. The stream then carries the
/// visitor's bytes both ways, unchanged.
/// </summary>
public static class ConnectionFields
{
    /// <summary>The visitor's address and port, as <c>address:port</c> (IPv6 in brackets).</summary>
    public const string Visitor = "tunnel-visitor";

    /// <summary>The edge port the visitor connected to.</summary>
    public const string EdgePort = "tunnel-edge-port";

    /// <summary>
    /// On an HTTP passthrough stream, <c>2</c> when the visitor's connection begins with the HTTP/2
    /// preface (h2c by prior knowledge) and <c>1.1</c> otherwise: a cleartext server cannot tell by ALPN.
    /// </summary>
    public const string HttpVersion = "tunnel-http-version";

    /// <summary>The <c>:protocol</c> value for a mode: <c>tunnel-http</c>, <c>tunnel-tls</c> or <c>tunnel-tcp</c>.</summary>
    public static string ProtocolFor(ConnectionMode mode) => mode switch
    {
        ConnectionMode.Http => "tunnel-http",
        ConnectionMode.Tls => "tunnel-tls",
        ConnectionMode.Tcp => "tunnel-tcp",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Not a connection mode."),
    };

    /// <summary>The mode a <c>:protocol</c> value names, if it names one.</summary>
    public static ConnectionMode? ModeOf(string? protocol) => protocol switch
    {
        "tunnel-http" => ConnectionMode.Http,
        "tunnel-tls" => ConnectionMode.Tls,
        "tunnel-tcp" => ConnectionMode.Tcp,
        _ => null,
    };
}
