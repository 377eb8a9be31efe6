namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// An ACME request or order that failed: the CA's problem document (RFC 8555 section 6.7, RFC 7807) when it
/// sent one, or what kept the edge from reaching the CA. <see cref="Reason"/> is the metric's bounded cause.
/// </summary>
internal sealed class AcmeException : Exception
{
    /// <summary>The prefix of ACME's own problem types.</summary>
    public const string ErrorNamespace = "urn:ietf:params:acme:error:";

    /// <summary>A failure with a problem type (ACME's or the edge's own short cause) and detail.</summary>
    public AcmeException(string type, string detail, int? status = null, TimeSpan? retryAfter = null, Exception? inner = null)
        : base(detail, inner)
    {
        Type = type;
        Detail = detail;
        Status = status;
        RetryAfter = retryAfter;
    }

    /// <summary>The problem type (<c>urn:ietf:params:acme:error:rateLimited</c>) or the edge's cause (<c>connection_refused</c>).</summary>
    public string Type { get; }

    /// <summary>The problem's detail, or what happened.</summary>
    public string Detail { get; }

    /// <summary>The HTTP status of the CA's answer, when there was one.</summary>
    public int? Status { get; }

    /// <summary>The CA's Retry-After, when it sent one (rate limits).</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>The bounded cause for metrics: ACME's type without its namespace (<c>rateLimited</c>), or the edge's own.</summary>
    public string Reason => Type.StartsWith(ErrorNamespace, StringComparison.Ordinal) ? Type[ErrorNamespace.Length..] : Type.Length <= 40 && !Type.Contains(':', StringComparison.Ordinal) ? Type : "other";

    /// <summary>Whether this is ACME's <c>badNonce</c>, which is retried once with a fresh nonce.</summary>
    public bool IsBadNonce => Type == ErrorNamespace + "badNonce";

    /// <summary>The type and detail, for logs and the status page.</summary>
    public override string ToString() => $"{Type}: {Detail}";
}
