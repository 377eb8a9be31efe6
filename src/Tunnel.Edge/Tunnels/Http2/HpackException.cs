namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// A header block the HPACK decoder cannot take (RFC 7541 section 2.3: a decoding error is a
/// connection error of type COMPRESSION_ERROR), or a block over the header list limit.
/// </summary>
internal sealed class HpackException(string message) : Exception(message);
