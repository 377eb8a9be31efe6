using System.Net;
using System.Text;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>The <c>nameserver</c> lines of a resolv.conf file, as the system resolver reads them.</summary>
internal static class ResolvConf
{
    public const int DnsPort = 53;

    /// <summary>Reads the first nameservers of <paramref name="path"/>, port 53.</summary>
    /// <exception cref="DnsResolutionException">The file cannot be read or names no server.</exception>
    public static IReadOnlyList<IPEndPoint> ReadServers(string path)
    {
        string text;
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var buffer = new byte[DiscoveryLimits.MaxResolvConfBytes];
            var length = file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            text = Encoding.UTF8.GetString(buffer, 0, length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new DnsResolutionException("no_servers", $"No DNS servers are configured and '{path}' cannot be read: {ex.Message}", ex);
        }

        var servers = Parse(text);
        if (servers.Count == 0)
        {
            throw new DnsResolutionException("no_servers", $"No DNS servers are configured and '{path}' has no usable 'nameserver' line.");
        }

        return servers;
    }

    public static IReadOnlyList<IPEndPoint> Parse(string text)
    {
        var servers = new List<IPEndPoint>();
        foreach (var rawLine in text.Split('\n'))
        {
            var line = rawLine.Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            var fields = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 2 && fields[0] == "nameserver" && IPAddress.TryParse(fields[1], out var address))
            {
                servers.Add(new IPEndPoint(address, DnsPort));
                if (servers.Count == DiscoveryLimits.MaxResolvConfServers)
                {
                    break;
                }
            }
        }

        return servers;
    }
}
