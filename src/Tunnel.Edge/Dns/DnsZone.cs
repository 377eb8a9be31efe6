using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using ARSoft.Tools.Net;
using ARSoft.Tools.Net.Dns;
using Tunnel.Protocol;

namespace Tunnel.Edge.Dns;

/// <summary>
/// One configured zone, checked and ready to use: its server's endpoint, the TSIG key (the secret read
/// from the configuration or its file), the target or addresses its records point to, and its patterns.
/// </summary>
internal sealed partial class DnsZone
{
    private const int DefaultPort = 53;

    private DnsZone(string name, IPEndPoint server, string keyName, TSigAlgorithm algorithm, byte[] secret, string? target, IPAddress[] addresses, string[] patterns)
    {
        Name = name;
        Server = server;
        KeyName = keyName;
        Algorithm = algorithm;
        Secret = secret;
        Target = target;
        Addresses = addresses;
        Patterns = patterns;
        DomainName = DomainName.Parse(name);
    }

    /// <summary>The zone's name, lower case, no trailing dot.</summary>
    public string Name { get; }

    /// <summary>The zone's name for ARSoft.</summary>
    public DomainName DomainName { get; }

    /// <summary>The primary server that takes the zone's updates.</summary>
    public IPEndPoint Server { get; }

    /// <summary>The TSIG key's name.</summary>
    public string KeyName { get; }

    /// <summary>The TSIG algorithm.</summary>
    public TSigAlgorithm Algorithm { get; }

    /// <summary>The TSIG secret. Never logged or shown.</summary>
    public byte[] Secret { get; }

    /// <summary>The CNAME target, or <c>null</c> for A/AAAA records.</summary>
    public string? Target { get; }

    /// <summary>The addresses of A/AAAA records.</summary>
    public IPAddress[] Addresses { get; }

    /// <summary>The hostname patterns published in this zone.</summary>
    public string[] Patterns { get; }

    /// <summary>Whether <paramref name="hostname"/> (normalized) is the zone's apex or inside it.</summary>
    public bool Contains(string hostname) =>
        hostname == Name || hostname.EndsWith("." + Name, StringComparison.Ordinal);

    /// <summary>Whether a route's hostname (normalized) is published in this zone.</summary>
    public bool Publishes(string hostname) =>
        Contains(hostname) && Patterns.Any(pattern => HostnameRules.IsCoveredBy(hostname, pattern));

    /// <summary>The records a published hostname gets: a CNAME to the target, or A/AAAA of the addresses at the apex or without a target.</summary>
    public DnsRecordBase[] RecordsFor(string hostname, int ttl)
    {
        var name = DomainName.Parse(hostname);
        if (Target is { } target && hostname != Name)
        {
            return [new CNameRecord(name, ttl, DomainName.Parse(target))];
        }

        return Addresses.Select(address => address.AddressFamily == AddressFamily.InterNetworkV6
            ? (DnsRecordBase)new AaaaRecord(name, ttl, address)
            : new ARecord(name, ttl, address)).ToArray();
    }

    /// <summary>Reads and checks every zone; adds each problem to <paramref name="errors"/> and returns the good zones.</summary>
    public static List<DnsZone> FromOptions(EdgeDnsOptions options, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        var zones = new List<DnsZone>();
        for (var i = 0; i < options.Zones.Count; i++)
        {
            if (From(options.Zones[i], $"Edge:Dns:Zones:{i}", errors) is { } zone)
            {
                zones.Add(zone);
            }
        }

        if (options.Ttl is < 1 or > 86400)
        {
            errors.Add($"Edge:Dns:Ttl must be between 1 and 86400 seconds; {options.Ttl} is not.");
        }

        if (options.RemoveAfter is { } grace && grace < TimeSpan.Zero)
        {
            errors.Add("Edge:Dns:RemoveAfter must not be negative (leave it unset to keep records).");
        }

        if (options.UpdateTimeout <= TimeSpan.Zero || options.FirstRetryDelay <= TimeSpan.Zero || options.MaxRetryDelay < options.FirstRetryDelay)
        {
            errors.Add("Edge:Dns:UpdateTimeout and FirstRetryDelay must be positive, and MaxRetryDelay at least FirstRetryDelay.");
        }

        return zones;
    }

    private static DnsZone? From(DnsZoneOptions zone, string section, List<string> errors)
    {
        var count = errors.Count;
        var name = zone.Name.Trim().TrimEnd('.').ToLowerInvariant();
        if (!HostnameRules.TryNormalize(name, out _, out var nameError) || name.StartsWith('*'))
        {
            errors.Add($"{section}:Name '{zone.Name}' is not a zone name ({nameError ?? "no wildcard"}).");
        }

        var server = ParseServer(zone.Server);
        if (server is null)
        {
            errors.Add($"{section}:Server '{zone.Server}' is not IP or IP:port (the primary server that takes updates).");
        }

        var algorithm = ParseAlgorithm(zone.KeyAlgorithm);
        if (algorithm == TSigAlgorithm.Unknown)
        {
            errors.Add($"{section}:KeyAlgorithm '{zone.KeyAlgorithm}' is not one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1.");
        }

        if (zone.KeyName.Trim().Length == 0)
        {
            errors.Add($"{section}:KeyName is required (the TSIG key's name, as the DNS server knows it).");
        }

        var secret = ReadSecret(zone, section, errors);
        var addresses = new List<IPAddress>();
        foreach (var text in zone.Addresses)
        {
            if (IPAddress.TryParse(text, out var address))
            {
                addresses.Add(address);
            }
            else
            {
                errors.Add($"{section}:Addresses: '{text}' is not an IP address.");
            }
        }

        CheckTargets(zone, name, section, addresses.Count, errors);
        var patterns = CheckPatterns(zone, name, section, errors);
        return errors.Count > count
            ? null
            : new DnsZone(name, server!, zone.KeyName.Trim().TrimEnd('.'), algorithm, secret!, zone.Target?.Trim().TrimEnd('.') is { Length: > 0 } target ? target : null, [.. addresses], patterns);
    }

    private static void CheckTargets(DnsZoneOptions zone, string name, string section, int addresses, List<string> errors)
    {
        if (zone.Target is { Length: > 0 } target && !HostnameRules.TryNormalize(target, out _, out var error))
        {
            errors.Add($"{section}:Target '{target}' is not a host name ({error}).");
        }

        var apex = zone.Patterns.Any(p => p.Trim().TrimEnd('.').Equals(name, StringComparison.OrdinalIgnoreCase));
        if (addresses == 0 && (zone.Target is not { Length: > 0 } && zone.Patterns.Count > 0 || apex))
        {
            errors.Add($"{section}: names published as A/AAAA records (the apex, or every name when Target is unset) need Addresses.");
        }
    }

    private static string[] CheckPatterns(DnsZoneOptions zone, string name, string section, List<string> errors)
    {
        var patterns = new List<string>();
        foreach (var text in zone.Patterns)
        {
            var bare = text.StartsWith("*.", StringComparison.Ordinal) ? text[2..] : text;
            if (!HostnameRules.TryNormalize(bare, out var normalized, out var error))
            {
                errors.Add($"{section}:Patterns: '{text}' is not a name or *.name pattern ({error}).");
                continue;
            }

            if (normalized != name && !normalized.EndsWith("." + name, StringComparison.Ordinal))
            {
                errors.Add($"{section}:Patterns: '{text}' is outside the zone {name}.");
                continue;
            }

            patterns.Add(text.StartsWith("*.", StringComparison.Ordinal) ? "*." + normalized : normalized);
        }

        return [.. patterns];
    }

    private static byte[]? ReadSecret(DnsZoneOptions zone, string section, List<string> errors)
    {
        string? text;
        if (zone.KeySecret is { Length: > 0 } && zone.KeySecretPath is { Length: > 0 })
        {
            errors.Add($"{section}: set KeySecret or KeySecretPath, not both.");
            return null;
        }

        if (zone.KeySecretPath is { Length: > 0 } path)
        {
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                errors.Add($"{section}:KeySecretPath: cannot read '{path}': {ex.Message}");
                return null;
            }

            // The key file tsig-keygen writes, or the base64 secret alone.
            if (KeyFileSecret().Match(text) is { Success: true } match)
            {
                text = match.Groups["secret"].Value;
            }
        }
        else
        {
            text = zone.KeySecret;
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            errors.Add($"{section}: KeySecret or KeySecretPath is required (the TSIG secret in base64, or a file from tsig-keygen).");
            return null;
        }

        try
        {
            return Convert.FromBase64String(text.Trim());
        }
        catch (FormatException)
        {
            // Not the secret itself: it must not reach a log.
            errors.Add($"{section}: the TSIG secret{(zone.KeySecretPath is { Length: > 0 } p ? $" in '{p}'" : "")} is not base64.");
            return null;
        }
    }

    private static IPEndPoint? ParseServer(string text)
    {
        if (IPAddress.TryParse(text, out var address) && !text.Contains("]:", StringComparison.Ordinal) && (address.AddressFamily == AddressFamily.InterNetworkV6 || !text.Contains(':', StringComparison.Ordinal)))
        {
            return new IPEndPoint(address, DefaultPort);
        }

        return IPEndPoint.TryParse(text, out var endPoint) && endPoint.Port > 0 ? endPoint : null;
    }

    private static TSigAlgorithm ParseAlgorithm(string text) => text.Trim().ToLowerInvariant() switch
    {
        "hmac-sha256" => TSigAlgorithm.Sha256,
        "hmac-sha384" => TSigAlgorithm.Sha384,
        "hmac-sha512" => TSigAlgorithm.Sha512,
        "hmac-sha224" => TSigAlgorithm.Sha224,
        "hmac-sha1" => TSigAlgorithm.Sha1,
        _ => TSigAlgorithm.Unknown,
    };

    [GeneratedRegex("""secret\s+"(?<secret>[^"]+)"\s*;""")]
    private static partial Regex KeyFileSecret();
}
