using System.CommandLine;
using System.Globalization;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Edge.Commands;

/// <summary>
/// The flags of <c>tunnel-edge serve</c> in one table: each flag's help text and the configuration keys
/// (under <c>Edge</c>, as in the JSON file and the environment) it sets. The command adds the options from
/// this table and turns the flags given into configuration from it, bound over the file and the environment.
/// </summary>
internal static class ServeFlags
{
    /// <summary>The flags in the order the help lists them; a later flag wins over an earlier one for a key both set.</summary>
    public static ServeFlag[] Create() =>
    [
        Text("--name", "The edge's name.", "Name"),
        Text("--region", "The edge's region.", "Region"),
        Number("--tunnel-port", "The tunnel port (default 7844).", "TunnelPort"),
        Number("--http-port", "The visitor HTTP port (default 8080).", "VisitorHttpPort"),
        Text("--listen", "The IP address every port listens on (default 0.0.0.0).", "TunnelAddress", "VisitorAddress", "Cluster:PeerAddress"),
        Number("--https-port", "The visitor HTTPS port (default 8443; -1 disables it). Opens when a certificate is given.", "VisitorHttpsPort"),
        PemPairs("--cert", "A visitor certificate for the HTTPS port: CERT.pem:KEY.pem, or one PEM holding both. Repeatable; the first is the default for unknown names.", "Certificates"),
        Directory("--cert-dir", "A directory of visitor certificates: every NAME.pem with NAME.key beside it.", "CertificateDirectory"),
        List("--redirect-https", "Redirect plain HTTP for this hostname to HTTPS (308); '*' for every host. Repeatable.", "HttpsRedirectHosts"),
        Number("--admin-port", "The admin port: status page at /, Prometheus metrics at /metrics (default 9844; -1 disables it).", "AdminPort"),
        Text("--admin-listen", "The IP address the admin port listens on (default 127.0.0.1; --listen does not change it).", "AdminAddress"),
        List("--admin-allow", "A network (CIDR) the admin API accepts requests from; repeatable, replaces the default (127.0.0.0/8 and ::1).", "AdminAllowedNetworks", replaces: options => options.AdminAllowedNetworks.Clear()),
        List("--etcd", "An etcd client URL (http://host:2379) of the cluster's route store; repeatable. Without it the edge runs alone.", "Cluster:StoreEndpoints"),
        Text("--etcd-ca", "PEM file of the CA an https etcd endpoint's certificate must chain to (default the system roots).", "Cluster:StoreCaPath"),
        PemPair("--etcd-cert", "The client certificate for an etcd with --client-cert-auth: CERT.pem:KEY.pem, or one PEM holding both.", "Cluster:StoreCertificatePath", "Cluster:StoreKeyPath"),
        Text("--etcd-user", "The etcd user to log in as, for an etcd with authentication enabled.", "Cluster:StoreUsername"),
        SecretFile("--etcd-password-file", "A file holding the password of --etcd-user (or set TUNNEL_EDGE_Edge__Cluster__StorePassword).", "etcd password file", "Cluster:StorePassword"),
        Number("--peer-port", "The inter-edge port, mutual TLS (default 7845).", "Cluster:PeerPort"),
        Text("--peer-listen", "The IP address the inter-edge port listens on (default --listen, else 0.0.0.0).", "Cluster:PeerAddress"),
        Text("--peer-advertise", "host:port the other edges dial to reach this one (default the inter-edge address and port).", "Cluster:AdvertiseAddress"),
        PemPair("--peer-cert", "The edge's certificate for the inter-edge port, CERT.pem:KEY.pem (default edge.pem; from issue-edge).", "Cluster:PeerCertificatePath", "Cluster:PeerKeyPath"),
        Seconds("--lease-ttl", "Seconds the edge's routes outlive it in the cluster (default 5).", "Cluster:LeaseTtl"),
    ];

    /// <summary>A text value, written to every key.</summary>
    private static ServeFlag Text(string name, string description, params string[] keys)
    {
        var option = new Option<string?>(name) { Description = description };
        return new(option, keys, result => result.GetValue(option) is { } value ? keys.Select(key => KeyValuePair.Create(key, value)) : []);
    }

    private static ServeFlag Number(string name, string description, string key)
    {
        var option = new Option<int?>(name) { Description = description };
        return new(option, [key], result => result.GetValue(option) is { } value ? [KeyValuePair.Create(key, value.ToString(CultureInfo.InvariantCulture))] : []);
    }

    /// <summary>Seconds on the command line, a <see cref="TimeSpan"/> in the configuration.</summary>
    private static ServeFlag Seconds(string name, string description, string key)
    {
        var option = new Option<double?>(name) { Description = description };
        return new(option, [key], result => result.GetValue(option) is { } seconds ? [KeyValuePair.Create(key, TimeSpan.FromSeconds(seconds).ToString("c", CultureInfo.InvariantCulture))] : []);
    }

    /// <summary>A directory, configured as its full path.</summary>
    private static ServeFlag Directory(string name, string description, string key)
    {
        var option = new Option<DirectoryInfo?>(name) { Description = description };
        return new(option, [key], result => result.GetValue(option) is { } directory ? [KeyValuePair.Create(key, directory.FullName)] : []);
    }

    /// <summary>A repeatable flag whose values add to the configured list (or replace it, with <paramref name="replaces"/>).</summary>
    private static ServeFlag List(string name, string description, string key, Action<EdgeOptions>? replaces = null)
    {
        var option = new Option<string[]>(name) { Description = description, AllowMultipleArgumentsPerToken = true };
        return new(option, [key], result => (result.GetValue(option) ?? []).Select((value, i) => KeyValuePair.Create($"{key}:{i}", value)), replaces);
    }

    /// <summary><c>CERT.pem:KEY.pem</c>, or one PEM holding both (then the key's path is the certificate's).</summary>
    private static ServeFlag PemPair(string name, string description, string certificateKey, string keyKey)
    {
        var option = new Option<string?>(name) { Description = description };
        return new(option, [certificateKey, keyKey], result =>
        {
            if (result.GetValue(option) is not { } pair)
            {
                return [];
            }

            var (certificatePath, keyPath) = Cli.SplitPemPair(pair);
            return [KeyValuePair.Create(certificateKey, certificatePath), KeyValuePair.Create(keyKey, keyPath ?? certificatePath)];
        });
    }

    /// <summary>Repeatable <see cref="PemPair"/>s added to a list of <see cref="Visitors.VisitorCertificateFile"/>.</summary>
    private static ServeFlag PemPairs(string name, string description, string key)
    {
        var option = new Option<string[]>(name) { Description = description, AllowMultipleArgumentsPerToken = true };
        return new(option, [key], result => (result.GetValue(option) ?? []).SelectMany((pair, i) =>
        {
            var (certificatePath, keyPath) = Cli.SplitPemPair(pair);
            var certificate = KeyValuePair.Create($"{key}:{i}:{nameof(Visitors.VisitorCertificateFile.CertificatePath)}", certificatePath);
            return keyPath is null ? [certificate] : new[] { certificate, KeyValuePair.Create($"{key}:{i}:{nameof(Visitors.VisitorCertificateFile.KeyPath)}", keyPath) };
        }));
    }

    /// <summary>A file holding a secret; the key gets its first line, so the secret stays off the command line.</summary>
    private static ServeFlag SecretFile(string name, string description, string what, string key)
    {
        var option = new Option<FileInfo?>(name) { Description = description };
        return new(option, [key], result =>
        {
            if (result.GetValue(option) is not { } file)
            {
                return [];
            }

            if (SecretFilePermissions.Problem(file.FullName, what) is { } problem)
            {
                throw new ServeFlagException($"{name}: {problem}");
            }

            try
            {
                // One line; a trailing newline (echo > file) is not part of the password.
                return [KeyValuePair.Create(key, File.ReadAllText(file.FullName).TrimEnd('\r', '\n'))];
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ServeFlagException($"{name} {file.FullName}: {ex.Message}");
            }
        });
    }
}
