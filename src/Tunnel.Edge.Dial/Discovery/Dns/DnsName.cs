using System.Diagnostics.CodeAnalysis;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>
/// Names as this client writes and compares them: dotted, without the trailing dot, the root as
/// <c>"."</c>. Names read from the wire escape any byte outside letters, digits, <c>-</c> and <c>_</c>
/// in the RFC 1035 presentation form (<c>\DDD</c>, <c>\.</c>), so text stays unambiguous and ASCII.
/// </summary>
internal static class DnsName
{
    public const string Root = ".";

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
        if (value.Length + 2 > DnsWire.MaxNameOctets)
        {
            error = $"The DNS name '{name}' is longer than {DnsWire.MaxNameOctets} octets.";
            return false;
        }

        foreach (var label in value.Split('.'))
        {
            if (label.Length is 0 or > DnsWire.MaxLabelLength)
            {
                error = $"The DNS name '{name}' has a label that is empty or longer than {DnsWire.MaxLabelLength} characters.";
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

    /// <summary>Writes a normalized name in wire form, uncompressed, and returns the octets written.</summary>
    public static int Write(string normalizedName, Span<byte> destination)
    {
        var written = 0;
        foreach (var label in normalizedName.Split('.'))
        {
            destination[written++] = (byte)label.Length;
            foreach (var c in label)
            {
                destination[written++] = (byte)c;
            }
        }

        destination[written++] = 0;
        return written;
    }

    public static bool IsPlainLabelCharacter(int c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '_';
}
