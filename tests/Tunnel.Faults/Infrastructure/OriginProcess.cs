using System.Net;
using System.Text.RegularExpressions;

namespace Tunnel.Faults.Infrastructure;

/// <summary>HelloOrigin as its own process (configured through environment variables, as an operator would), dialing the given edges.</summary>
public static partial class OriginProcess
{
    public static ServiceProcess Start(TestPki pki, string hostname, IEnumerable<IPEndPoint> edges, string name = "origin", int haConnections = 4, NetworkNamespace? inNamespace = null, IReadOnlyDictionary<string, string>? extraEnvironment = null)
    {
        var (certificate, key) = pki.IssueOrigin(hostname);
        var environment = new Dictionary<string, string>
        {
            ["Tunnel__Hostnames__0"] = hostname,
            ["Tunnel__HaConnections"] = haConnections.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Tunnel__CertificatePath"] = certificate,
            ["Tunnel__CertificateKeyPath"] = key,
            ["Tunnel__EdgeCaPath"] = pki.CaPath,
            ["Tunnel__EdgeServerName"] = "localhost",
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__Tunnel.Transport"] = "Information",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
        foreach (var (variable, value) in extraEnvironment ?? new Dictionary<string, string>())
        {
            environment[variable] = value;
        }

        var i = 0;
        foreach (var edge in edges)
        {
            environment[$"Tunnel__Edges__{i++}"] = edge.ToString();
        }

        return ServiceProcess.StartDotnet(name, "HelloOrigin.dll", [], environment, inNamespace);
    }

    /// <summary>Lines an origin logs when a tunnel connection registers.</summary>
    [GeneratedRegex(@"Tunnel connection \d+ registered with edge")]
    public static partial Regex Registered();
}
