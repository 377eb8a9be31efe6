using System.Diagnostics.CodeAnalysis;

namespace Tunnel.Protocol;

/// <summary>
/// What a tunnel hostname may look like and which certificate names cover it.
/// </summary>
/// <remarks>
/// Names are compared in lower case, without a trailing dot. A wildcard <c>*.example.com</c> covers
/// exactly one more label (<c>a.example.com</c>, not <c>a.b.example.com</c> nor <c>example.com</c>),
/// as in TLS (RFC 6125), so that a credential never reaches further than its certificate would.
/// </remarks>
public static class HostnameRules
{
    /// <summary>
    /// Normalizes a hostname (lower case, no trailing dot) and checks that it is a DNS name,
    /// optionally with a leading <c>*.</c> label.
    /// </summary>
    /// <returns><c>true</c> and the normalized name when valid; otherwise <c>false</c> and a reason.</returns>
    public static bool TryNormalize(string? hostname, [NotNullWhen(true)] out string? normalized, [NotNullWhen(false)] out string? error)
    {
        normalized = null;
        if (string.IsNullOrWhiteSpace(hostname))
        {
            error = "the hostname is empty";
            return false;
        }

        var name = hostname.Trim().TrimEnd('.').ToLowerInvariant();
        if (name.Length == 0 || name.Length > TunnelLimits.MaxHostnameLength)
        {
            error = $"'{Printable(hostname)}' is not between 1 and {TunnelLimits.MaxHostnameLength} characters long";
            return false;
        }

        var labels = name.Split('.');
        for (var i = 0; i < labels.Length; i++)
        {
            var label = labels[i];
            if (i == 0 && label == "*")
            {
                if (labels.Length < 3)
                {
                    error = $"'{Printable(hostname)}' is a wildcard over a top-level name";
                    return false;
                }

                continue;
            }

            if (!IsValidLabel(label))
            {
                error = $"'{Printable(hostname)}' is not a valid DNS name";
                return false;
            }
        }

        normalized = name;
        error = null;
        return true;
    }

    /// <summary>
    /// Whether a certificate DNS name (exact or wildcard) covers a requested tunnel hostname.
    /// A wildcard hostname is covered only by the identical wildcard.
    /// </summary>
    public static bool IsCoveredBy(string hostname, string certificateName)
    {
        ArgumentNullException.ThrowIfNull(hostname);
        ArgumentNullException.ThrowIfNull(certificateName);
        var host = hostname.TrimEnd('.').ToLowerInvariant();
        var pattern = certificateName.TrimEnd('.').ToLowerInvariant();
        if (host == pattern)
        {
            return true;
        }

        if (!pattern.StartsWith("*.", StringComparison.Ordinal) || host.StartsWith("*.", StringComparison.Ordinal))
        {
            return false;
        }

        var firstDot = host.IndexOf('.', StringComparison.Ordinal);
        return firstDot > 0 && host.AsSpan(firstDot).SequenceEqual(pattern.AsSpan(1));
    }

    /// <summary>The wildcard name that would cover <paramref name="hostname"/>, or <c>null</c> for a top-level name.</summary>
    public static string? WildcardFor(string hostname)
    {
        ArgumentNullException.ThrowIfNull(hostname);
        var firstDot = hostname.IndexOf('.', StringComparison.Ordinal);
        if (firstDot <= 0 || hostname.IndexOf('.', firstDot + 1) < 0)
        {
            return null;
        }

        return string.Concat("*", hostname.AsSpan(firstDot));
    }

    private static bool IsValidLabel(string label)
    {
        if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-')
        {
            return false;
        }

        foreach (var c in label)
        {
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }

    private static string Printable(string value)
    {
        var shortened = value.Length > 80 ? value[..80] + "…" : value;
        return new string(shortened.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }
}
