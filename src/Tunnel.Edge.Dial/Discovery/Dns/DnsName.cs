using System.Diagnostics.CodeAnalysis;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>
/// Names as the resolver asks for and compares them: dotted, without the trailing dot, the root as
/// <c>"."</c>. Names read from answers come from DnsClient in presentation form, trailing dot removed.
/// </summary>
internal static class DnsName
{
    public const string Root = ".";

    // RFC 1035 section 2.3.4.
    private const int MaxLabelLength = 63;
    private const int MaxNameOctets = 255;

    /// <summary>DNS compares names case-insensitively in ASCII (RFC 4343); our names are all ASCII.</summary>
    public static bool AreEqual(string left, string right) => string.Equals(left, right, StringComparison.OrdinalIgnoreCase);

    /// <summary>Checks a name we are about to ask for and returns it without a trailing dot.</summary>
    public static bool TryNormalizeQueryName(string? name, [NotNullWhen(true)] out string? normalized, [NotNullWhen(false)] out string? error)
    {
        normalized = null;
        if (string.IsNullOrWhiteSpace(name))
        {
            error = "A DNS name is empty.";
            return false;
        }

        var value = name.Trim();
        if (value.EndsWith('.'))
        {
            value = value[..^1];
        }

        if (value.Length == 0)
        {
            error = "The DNS root '.' cannot be looked up.";
            return false;
        }

        // Length octets plus characters plus the root octet: one more than the text length.
        if (value.Length + 2 > MaxNameOctets)
        {
            error = $"The DNS name '{name}' is longer than {MaxNameOctets} octets.";
            return false;
        }

        foreach (var label in value.Split('.'))
        {
            if (label.Length is 0 or > MaxLabelLength)
            {
                error = $"The DNS name '{name}' has a label that is empty or longer than {MaxLabelLength} characters.";
                return false;
            }

            foreach (var c in label)
            {
                if (!IsPlainLabelCharacter(c))
                {
                    error = $"The DNS name '{name}' has the character '{c}'; only ASCII letters, digits, '-' and '_' are supported (use the punycode form of an international name).";
                    return false;
                }
            }
        }

        normalized = value;
        error = null;
        return true;
    }

    public static bool IsPlainLabelCharacter(int c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '_';
}
