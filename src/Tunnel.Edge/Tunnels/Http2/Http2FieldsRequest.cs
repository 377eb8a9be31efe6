namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// A request whose creator writes its header fields straight into the HPACK block, and which gets its
/// response's fields back as a list in the order they came (<see cref="Http2ResponseFields.Of"/>),
/// rather than through <see cref="System.Net.Http.Headers.HttpHeaders"/>: no URI is parsed, no header
/// collection is filled only to be read back once. Content and <c>Headers.Protocol</c> (extended
/// CONNECT) are used as for any request; anything else put in <c>Headers</c> is not sent.
/// </summary>
internal abstract class Http2FieldsRequest : HttpRequestMessage
{
    /// <summary>A request with the given method; its target and authority come from the overrides.</summary>
    protected Http2FieldsRequest(HttpMethod method)
        : base(method, (Uri?)null)
    {
        Version = System.Net.HttpVersion.Version20;
        VersionPolicy = HttpVersionPolicy.RequestVersionExact;
    }

    /// <summary>The <c>:path</c>: path and query as they are to be sent, starting with '/'.</summary>
    public abstract string PathAndQuery { get; }

    /// <summary>The <c>:authority</c>.</summary>
    public abstract string Authority { get; }

    /// <summary>The <c>:protocol</c> of an extended CONNECT (RFC 8441), or <c>null</c> for an ordinary request.</summary>
    public abstract string? Protocol { get; }

    /// <summary>
    /// Writes every regular field but <c>content-length</c> (taken from the content) and the
    /// connection-specific ones, which HTTP/2 forbids and which the caller must leave out.
    /// </summary>
    public abstract void WriteFields(HpackEncoder encoder);
}

/// <summary>The response fields of an <see cref="Http2FieldsRequest"/>.</summary>
internal static class Http2ResponseFields
{
    /// <summary>
    /// The final response's fields in the order the origin sent them (names lower-case, a repeated field
    /// once per occurrence), or <c>null</c> when <paramref name="response"/> did not answer an
    /// <see cref="Http2FieldsRequest"/> on this client (its fields are then in its header collections).
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>>? Of(HttpResponseMessage response) =>
        response.Content is Http2ResponseContent content ? content.Stream.ResponseFields : null;

    /// <summary>
    /// Whether <paramref name="response"/> has trailers, read once its body has ended; for a response of
    /// this client without asking for <see cref="HttpResponseMessage.TrailingHeaders"/>, which makes a
    /// collection to answer.
    /// </summary>
    public static bool HasTrailers(HttpResponseMessage response) =>
        response.Content is Http2ResponseContent content ? content.Stream.HasTrailers : response.TrailingHeaders.Any();
}
