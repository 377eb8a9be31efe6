using System.CommandLine;

namespace Tunnel.Edge.Commands;

/// <summary>
/// One flag of <c>tunnel-edge serve</c>: the option the parser reads and the help text shows, and the
/// configuration keys (under <c>Edge</c>) its value sets. <see cref="ServeFlags"/> holds the table.
/// </summary>
internal sealed class ServeFlag
{
    private readonly Func<ParseResult, IEnumerable<KeyValuePair<string, string>>> _values;

    /// <param name="option">The option, with its name and help text.</param>
    /// <param name="keys">The configuration keys the flag sets, relative to the <c>Edge</c> section.</param>
    /// <param name="values">The flag's keys and values in a parse result; none when the flag is absent.</param>
    /// <param name="replaces">The list the flag's values replace rather than add to, if any.</param>
    public ServeFlag(Option option, IReadOnlyList<string> keys, Func<ParseResult, IEnumerable<KeyValuePair<string, string>>> values, Action<EdgeOptions>? replaces = null)
    {
        Option = option;
        Keys = keys;
        _values = values;
        Replaces = replaces;
    }

    /// <summary>The option, with its name and help text.</summary>
    public Option Option { get; }

    /// <summary>The configuration keys the flag sets, relative to the <c>Edge</c> section.</summary>
    public IReadOnlyList<string> Keys { get; }

    /// <summary>Empties the list the flag's values replace (the configured one and its defaults); <c>null</c> when they add to it.</summary>
    public Action<EdgeOptions>? Replaces { get; }

    /// <summary>The configuration entries (full keys) the flag sets in a parse result; none when it is absent.</summary>
    /// <exception cref="ServeFlagException">The value cannot be used (an unreadable secret file).</exception>
    public IEnumerable<KeyValuePair<string, string>> Values(ParseResult result) =>
        _values(result).Select(pair => KeyValuePair.Create(EdgeOptions.SectionName + ":" + pair.Key, pair.Value));
}

/// <summary>A flag's value cannot be used; the message names the flag.</summary>
internal sealed class ServeFlagException(string message) : Exception(message);
