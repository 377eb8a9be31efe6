using System.Net.Http.Headers;
using Tunnel.Edge.Tunnels.Http2;

namespace Tunnel.Edge.Forwarding;

/// <summary>
/// Where the edge writes a forwarded request's own fields, in the form of the hop the request takes:
/// a tunnel stream's HPACK block (<see cref="HpackFields"/>) or, for the inter-edge hop, HttpClient's
/// header collection (<see cref="HeaderCollectionFields"/>). The response comes back in the same form
/// (the route's <c>CopyResponseHeaders</c>).
/// </summary>
internal interface IRequestFields
{
    /// <summary>Adds one field to the request.</summary>
    void Add(string name, string value);
}

/// <summary>A tunnel stream's fields, written straight into its HPACK block as it is encoded.</summary>
internal readonly struct HpackFields(HpackEncoder encoder) : IRequestFields
{
    /// <inheritdoc/>
    public void Add(string name, string value) => encoder.WriteLiteral(name, value);
}

/// <summary>The inter-edge hop's fields, in the request's header collection.</summary>
internal readonly struct HeaderCollectionFields(HttpRequestHeaders headers) : IRequestFields
{
    /// <inheritdoc/>
    public void Add(string name, string value) => headers.TryAddWithoutValidation(name, value);
}
