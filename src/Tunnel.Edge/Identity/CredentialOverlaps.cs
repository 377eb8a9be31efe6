using Tunnel.Protocol;

namespace Tunnel.Edge.Identity;

/// <summary>An exact hostname that two credentials both cover.</summary>
/// <param name="Hostname">The exact name.</param>
/// <param name="Holder">The credential covering it by that exact name.</param>
/// <param name="Other">The other credential: the same exact name, or a wildcard one label up.</param>
/// <param name="OtherName">The name <paramref name="Other"/> covers it with (the exact name or the wildcard).</param>
/// <param name="Message">What it means, for <c>tunnel-edge issue</c> and the status page.</param>
internal sealed record CredentialOverlap(string Hostname, IssuedCredential Holder, IssuedCredential Other, string OtherName, string Message);

/// <summary>
/// Finds hostnames covered by more than one credential: their origins' connections pool as replicas of
/// one site, unless one claims the name exclusively, in which case the other cannot register it. Either
/// way the operator should know, so <c>tunnel-edge issue</c> and the status page say so.
/// </summary>
internal static class CredentialOverlaps
{
    /// <summary>
    /// The overlaps among <paramref name="credentials"/> (pass only those that may still serve: not
    /// revoked, not expired), each pair and name once; with <paramref name="involving"/>, only those of that credential.
    /// </summary>
    public static IReadOnlyList<CredentialOverlap> Find(IEnumerable<IssuedCredential> credentials, string? involving = null)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        var all = credentials.DistinctBy(c => c.Id, StringComparer.OrdinalIgnoreCase).ToArray();

        // Indexed by name, so an edge with thousands of credentials finds the few overlaps without comparing every pair.
        var byName = all.Select((credential, index) => (credential, index))
            .SelectMany(c => c.credential.Hostnames.Select(h => (Hostname: h.ToLowerInvariant(), c.credential, c.index)))
            .ToLookup(e => e.Hostname, e => (e.credential, e.index), StringComparer.Ordinal);
        var overlaps = new List<CredentialOverlap>();
        for (var i = 0; i < all.Length; i++)
        {
            foreach (var hostname in all[i].Hostnames.Select(h => h.ToLowerInvariant()).Where(IsExact).Distinct(StringComparer.Ordinal))
            {
                // Two exact holders are one overlap, reported from the first of the pair.
                foreach (var (other, j) in byName[hostname].Where(o => o.index > i && Involves(all[i], o.credential, involving)))
                {
                    overlaps.Add(new CredentialOverlap(hostname, all[i], other, hostname, SameName(hostname, all[i], other)));
                }

                if (HostnameRules.WildcardFor(hostname) is { } wildcard)
                {
                    foreach (var (other, _) in byName[wildcard].Where(o => o.index != i && Involves(all[i], o.credential, involving)))
                    {
                        overlaps.Add(new CredentialOverlap(hostname, all[i], other, wildcard, UnderWildcard(hostname, all[i], other, wildcard)));
                    }
                }
            }
        }

        return overlaps;
    }

    /// <summary>How a credential is named to the operator: its id, and its label when it has one.</summary>
    public static string Describe(IssuedCredential credential)
    {
        ArgumentNullException.ThrowIfNull(credential);
        return credential.Label.Length > 0 ? $"{credential.Id} ({credential.Label})" : credential.Id;
    }

    private static string SameName(string hostname, IssuedCredential first, IssuedCredential second) => (first.Exclusive, second.Exclusive) switch
    {
        (true, true) => $"{hostname} is claimed exclusively by both credential {Describe(first)} and credential {Describe(second)}: both may register it and their connections pool (a renewal; revoke the old one once its origins moved).",
        (true, false) => $"{hostname} is claimed exclusively by credential {Describe(first)}; credential {Describe(second)} covers it too but is refused when it registers it.",
        (false, true) => $"{hostname} is claimed exclusively by credential {Describe(second)}; credential {Describe(first)} covers it too but is refused when it registers it.",
        _ => $"{hostname} is covered by credential {Describe(first)} and credential {Describe(second)}: their origins' connections pool as replicas of one site (issue one with --exclusive to keep the name to it).",
    };

    private static string UnderWildcard(string hostname, IssuedCredential holder, IssuedCredential other, string wildcard) => holder.Exclusive
        ? $"{hostname} (credential {Describe(holder)}, exclusive) is also covered by credential {Describe(other)}'s {wildcard}, which is refused when it registers {hostname}."
        : $"{hostname} (credential {Describe(holder)}) is also covered by credential {Describe(other)}'s {wildcard}: if that credential registers {hostname}, their connections pool (issue {Describe(holder)} with --exclusive to keep the name to it).";

    private static bool Involves(IssuedCredential first, IssuedCredential second, string? id) =>
        id is null || string.Equals(first.Id, id, StringComparison.OrdinalIgnoreCase) || string.Equals(second.Id, id, StringComparison.OrdinalIgnoreCase);

    private static bool IsExact(string hostname) => !hostname.StartsWith("*.", StringComparison.Ordinal);
}
