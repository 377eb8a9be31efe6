namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The ACME state the edges of a cluster share, so that any edge answers a challenge and serves a
/// certificate whichever edge ordered it, and only one edge at a time orders a given certificate.
/// </summary>
internal interface IAcmeShare
{
    /// <summary>This edge's name, as the other edges see it in a lock.</summary>
    string EdgeName { get; }

    /// <summary>
    /// How long an edge waits after publishing a challenge answer before it tells the CA to validate, so the
    /// other edges (which learn it from the store's watch) can answer too.
    /// </summary>
    TimeSpan AnswerPropagation { get; }

    /// <summary>The cluster's challenge answers and certificates now.</summary>
    AcmeShared Current { get; }

    /// <summary>Raised after <see cref="Current"/> changed.</summary>
    event Action<AcmeShared>? Changed;

    /// <summary>Publishes a challenge answer for every edge until <see cref="WithdrawAnswerAsync"/> (or this edge's lease ends).</summary>
    Task PublishAnswerAsync(AcmeSharedAnswer answer, CancellationToken ct);

    /// <summary>Withdraws an answer; best effort (it goes with the lease anyway).</summary>
    Task WithdrawAnswerAsync(AcmeSharedAnswer answer, CancellationToken ct);

    /// <summary>Takes the order lock of certificate <paramref name="id"/>: <c>null</c> when this edge holds it, else the holder's name.</summary>
    Task<string?> TryLockOrderAsync(string id, CancellationToken ct);

    /// <summary>Gives the order lock back; best effort (it goes with the lease anyway).</summary>
    Task UnlockOrderAsync(string id, CancellationToken ct);

    /// <summary>Publishes an issued certificate for every edge (its key sealed with the cluster's key).</summary>
    Task PublishCertificateAsync(string id, IssuedPem pem, CancellationToken ct);

    /// <summary>Reads certificate <paramref name="id"/> from the store itself (not the watched copy), or <c>null</c>.</summary>
    Task<IssuedPem?> ReadCertificateAsync(string id, CancellationToken ct);
}

/// <summary>One challenge answer: HTTP-01 by token, or TLS-ALPN-01 by name, with its key authorization.</summary>
internal sealed record AcmeSharedAnswer(string Kind, string Key, string KeyAuthorization)
{
    /// <summary>The kind of an HTTP-01 answer.</summary>
    public const string Http = "http";

    /// <summary>The kind of a TLS-ALPN-01 answer.</summary>
    public const string TlsAlpn = "tls-alpn";
}

/// <summary>What the cluster shares: answers by kind and key, and certificates by id.</summary>
internal sealed record AcmeShared(IReadOnlyDictionary<string, string> HttpAnswers, IReadOnlyDictionary<string, string> TlsAlpnAnswers, IReadOnlyDictionary<string, IssuedPem> Certificates)
{
    /// <summary>Nothing shared.</summary>
    public static AcmeShared Empty { get; } = new(new Dictionary<string, string>(), new Dictionary<string, string>(), new Dictionary<string, IssuedPem>());
}
