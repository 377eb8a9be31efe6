using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Transport.Internal;

/// <summary>
/// What the origin presents and trusts, where it dials, and the names it serves: one reading of the
/// options and files. <c>Fingerprint</c> changes whenever anything a dial uses changes; a reload that
/// keeps it changes nothing.
/// </summary>
internal sealed record TunnelIdentity(
    X509Certificate2 Certificate,
    X509Certificate2Collection EdgeCas,
    IReadOnlyList<string> EdgeTexts,
    IReadOnlyList<EdgeAddress> Edges,
    string? SrvName,
    string? EdgeServerName,
    IReadOnlyList<string> Hostnames,
    string Source,
    string Fingerprint);
