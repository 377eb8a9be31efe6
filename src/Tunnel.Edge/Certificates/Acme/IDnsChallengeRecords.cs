namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// Publishes the TXT records of ACME's DNS-01 challenge (RFC 8555 section 8.4) in the operator's zone: the
/// only way to a wildcard certificate. The edge's RFC 2136 publisher implements it; without one registered,
/// names that need DNS-01 are refused with reason <c>no_dns_publisher</c>.
/// </summary>
internal interface IDnsChallengeRecords
{
    /// <summary>Adds a TXT record <paramref name="value"/> at <paramref name="name"/> (<c>_acme-challenge.example.com</c>), beside any there.</summary>
    Task SetTxtAsync(string name, string value, CancellationToken ct);

    /// <summary>Removes the TXT record <paramref name="value"/> at <paramref name="name"/>, leaving others.</summary>
    Task RemoveTxtAsync(string name, string value, CancellationToken ct);
}
