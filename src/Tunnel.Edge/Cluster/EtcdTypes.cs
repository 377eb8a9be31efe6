using System.Security.Cryptography.X509Certificates;

namespace Tunnel.Edge.Cluster;

/// <summary>An etcd user and password, for an etcd with authentication enabled.</summary>
/// <param name="User">The etcd user.</param>
/// <param name="Password">Its password.</param>
internal sealed record EtcdLogin(string User, string Password)
{
    /// <summary>The login <paramref name="cluster"/> names, or <c>null</c>.</summary>
    /// <exception cref="InvalidOperationException">Only one of user and password is set.</exception>
    public static EtcdLogin? From(ClusterOptions cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return (cluster.StoreUsername, cluster.StorePassword) switch
        {
            ({ Length: > 0 } user, { Length: > 0 } password) => new EtcdLogin(user, password),
            (null or "", null or "") => null,
            ({ Length: > 0 }, _) => throw new InvalidOperationException("Edge:Cluster:StoreUsername is set without StorePassword (or --etcd-password-file)."),
            _ => throw new InvalidOperationException("Edge:Cluster:StorePassword is set without StoreUsername (--etcd-user)."),
        };
    }

    /// <summary>The user only: the password never reaches a log.</summary>
    public override string ToString() => $"EtcdLogin {{ User = {User} }}";
}

/// <summary>TLS settings for <c>https</c> etcd endpoints.</summary>
internal sealed class EtcdTlsOptions
{
    /// <summary>The CAs the endpoint's certificate must chain to; <c>null</c> or empty for the system roots.</summary>
    public X509Certificate2Collection? TrustedCas { get; init; }

    /// <summary>The certificate (with key) presented to an etcd that asks for one; <c>null</c> for none.</summary>
    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>
    /// The TLS settings <paramref name="cluster"/> names, or <c>null</c> when it names none. Reads the
    /// files now, so a missing or unreadable one stops the edge at start with its path.
    /// </summary>
    /// <exception cref="InvalidOperationException">A file is missing, unreadable or holds no certificate.</exception>
    public static EtcdTlsOptions? From(ClusterOptions cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (cluster.StoreCaPath is not { Length: > 0 } && cluster.StoreCertificatePath is not { Length: > 0 })
        {
            return null;
        }

        X509Certificate2Collection? cas = null;
        if (cluster.StoreCaPath is { Length: > 0 } caPath)
        {
            cas = [];
            try
            {
                cas.ImportFromPemFile(caPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new InvalidOperationException($"Edge:Cluster:StoreCaPath: cannot read the CA certificates in '{caPath}': {ex.Message}", ex);
            }

            if (cas.Count == 0)
            {
                throw new InvalidOperationException($"Edge:Cluster:StoreCaPath: '{caPath}' holds no certificate.");
            }
        }

        X509Certificate2? client = null;
        if (cluster.StoreCertificatePath is { Length: > 0 } certificatePath)
        {
            try
            {
                client = Identity.CertificateIssuer.LoadPem(certificatePath, cluster.StoreKeyPath is { Length: > 0 } keyPath ? keyPath : certificatePath);
            }
            catch (InvalidOperationException ex)
            {
                throw new InvalidOperationException($"Edge:Cluster:StoreCertificatePath: {ex.Message}", ex);
            }
        }

        return new EtcdTlsOptions { TrustedCas = cas, ClientCertificate = client };
    }
}

/// <summary>A failed etcd call: unreachable, an error reply, or a reply we cannot read.</summary>
internal sealed class EtcdException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EtcdException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public EtcdException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public EtcdException(string message)
        : base(message)
    {
    }
}

/// <summary>One key changed: <see cref="Value"/> is <c>null</c> when it was deleted (or its lease expired).</summary>
internal sealed record EtcdChange(string Key, string? Value);

/// <summary>A batch of changes from a watch, and the store's revision after it.</summary>
internal sealed record EtcdWatchBatch(long Revision, IReadOnlyList<EtcdChange> Changes);
