using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Identity;

/// <summary>
/// An origin certificate's exclusive claim on exact hostnames (<c>tunnel-edge issue --exclusive</c>):
/// a non-critical extension listing the names, signed by the edge's CA with the rest of the certificate.
/// </summary>
/// <remarks>
/// The claim lives in the certificate rather than in one edge's files because the certificate is the one
/// thing every edge of a cluster already checks, with the CA they all trust: each edge learns the claim
/// from the credential itself, after any restart, with nothing to replicate or lose, and a tenant cannot
/// forge or strip it without the CA's key. The credential registry keeps a copy for the operator's
/// overlap warnings. Non-critical, so TLS stacks that do not know it still validate the certificate.
/// </remarks>
internal static class ExclusiveClaim
{
    /// <summary>The extension's OID: under the UUID arc (2.25, ITU-T X.667), which needs no registration.</summary>
    public const string ExtensionOid = "2.25.222631333677171576504431820239255283486";

    /// <summary>The extension claiming <paramref name="hostnames"/> (exact names): a DER SEQUENCE OF IA5String.</summary>
    public static X509Extension CreateExtension(IEnumerable<string> hostnames)
    {
        ArgumentNullException.ThrowIfNull(hostnames);
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            foreach (var hostname in hostnames)
            {
                writer.WriteCharacterString(UniversalTagNumber.IA5String, hostname);
            }
        }

        return new X509Extension(new Oid(ExtensionOid), writer.Encode(), critical: false);
    }

    /// <summary>The exact hostnames a certificate claims exclusively; empty when it claims none or the extension is malformed.</summary>
    public static IReadOnlyList<string> Read(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != ExtensionOid)
            {
                continue;
            }

            try
            {
                var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER);
                var sequence = reader.ReadSequence();
                var names = new List<string>();
                while (sequence.HasData)
                {
                    names.Add(sequence.ReadCharacterString(UniversalTagNumber.IA5String).ToLowerInvariant());
                }

                return names;
            }
            catch (AsnContentException)
            {
                // Only the CA writes this extension; a malformed one claims nothing rather than failing the tunnel.
                return [];
            }
        }

        return [];
    }
}
