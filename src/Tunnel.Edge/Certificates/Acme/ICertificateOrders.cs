using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>What <see cref="AcmeCertificates"/> needs of a CA: an order for names, and the CA's renewal window.</summary>
internal interface ICertificateOrders
{
    /// <summary>Orders a certificate for <paramref name="names"/>; <paramref name="replacing"/> is the certificate it renews.</summary>
    Task<IssuedPem> OrderAsync(IReadOnlyList<string> names, X509Certificate2? replacing, CancellationToken ct);

    /// <summary>The CA's suggested renewal window (RFC 9773), or <c>null</c> when it offers none.</summary>
    Task<(DateTimeOffset Start, DateTimeOffset End)?> RenewalWindowAsync(X509Certificate2 certificate, CancellationToken ct);
}

/// <summary>An issued certificate: the chain as the CA sent it (PEM, leaf first) and its private key (PKCS#8 PEM).</summary>
internal sealed record IssuedPem(string ChainPem, string KeyPem);
