namespace Tunnel.Protocol.Registration;

/// <summary>
/// The edge's one reply to a <see cref="RegistrationRequest"/>: either <see cref="Accepted"/> or
/// <see cref="Rejected"/> is set, never both.
/// </summary>
public sealed record RegistrationResponse
{
    /// <summary>Set when the edge took the connection.</summary>
    public RegistrationAccepted? Accepted { get; init; }

    /// <summary>Set when the edge refused the connection; it closes the connection after sending this.</summary>
    public RegistrationRejected? Rejected { get; init; }

    /// <summary>Creates an accepting reply.</summary>
    public static RegistrationResponse Accept(RegistrationAccepted accepted) => new() { Accepted = accepted };

    /// <summary>Creates a refusing reply.</summary>
    public static RegistrationResponse Reject(RegistrationRejected rejected) => new() { Rejected = rejected };
}

/// <summary>The edge accepted a registration.</summary>
public sealed record RegistrationAccepted
{
    /// <summary>The id the edge gave this tunnel connection; it appears in the edge's logs.</summary>
    public string ConnectionId { get; init; } = "";

    /// <summary>The edge's name.</summary>
    public string EdgeName { get; init; } = "";

    /// <summary>The edge's region (data centre, zone); empty when the edge has none configured.</summary>
    public string Region { get; init; } = "";

    /// <summary>
    /// The public key (P-256, SubjectPublicKeyInfo, base64) that signs the edge's identity assertions
    /// (<see cref="TunnelHeaderNames.Identity"/>); <c>null</c> when the edge signs visitors in for no route.
    /// Sent on the TLS connection the origin dialled and authenticated, so it comes from that edge only.
    /// Older origins ignore it.
    /// </summary>
    public string? IdentityKey { get; init; }
}

/// <summary>The edge refused a registration, and why.</summary>
public sealed record RegistrationRejected
{
    /// <summary>One of <see cref="RejectionCodes"/>.</summary>
    public string Code { get; init; } = "";

    /// <summary>A human-readable reason, naming the offending hostname where there is one.</summary>
    public string Message { get; init; } = "";

    /// <summary>Whether trying again (here or at another edge) may succeed without a configuration change.</summary>
    public bool Retryable { get; init; }

    /// <summary>When set, the origin must not dial this edge again before this many seconds.</summary>
    public int? RetryAfterSeconds { get; init; }
}
