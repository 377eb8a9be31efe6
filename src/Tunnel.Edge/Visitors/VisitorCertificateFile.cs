namespace Tunnel.Edge.Visitors;

/// <summary>One visitor certificate for the HTTPS port: a PEM certificate (chain) and its PEM private key.</summary>
public sealed class VisitorCertificateFile
{
    /// <summary>PEM file with the certificate first, then any intermediate certificates to send with it.</summary>
    /// <remarks>Required.</remarks>
    public string CertificatePath { get; set; } = "";

    /// <summary>PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).</summary>
    /// <remarks>Defaults to none: the key is read from <see cref="CertificatePath"/>.</remarks>
    public string? KeyPath { get; set; }
}
