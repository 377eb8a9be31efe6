using System.CommandLine;
using System.Net;

namespace Tunnel.Edge.Commands;

/// <summary>What the commands share: the common options, the error handling and the table output.</summary>
internal static class Cli
{
    /// <summary>The <c>--dir</c> of the commands that work on an edge directory.</summary>
    public static Option<DirectoryInfo> DirectoryOption() => new("--dir") { Description = "The edge directory (from init).", Required = true };

    /// <summary>
    /// Runs a command's work; a failure the user can fix (a bad file, a refused operation) is printed on
    /// standard error and the exit code is 1.
    /// </summary>
    public static int Run(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
    }

    /// <summary>Runs a certificate-issuing command's work; a refused issue is printed and the exit code is 1.</summary>
    public static int RunIssue(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
    }

    /// <summary>Parses <c>--ip</c> values; prints the first that is not an address.</summary>
    public static bool TryParseAddresses(string[]? texts, out List<IPAddress> addresses)
    {
        addresses = [];
        foreach (var text in texts ?? [])
        {
            if (!IPAddress.TryParse(text, out var ip))
            {
                Console.Error.WriteLine($"'{text}' is not an IP address.");
                return false;
            }

            addresses.Add(ip);
        }

        return true;
    }

    /// <summary>
    /// Splits <c>CERT.pem:KEY.pem</c> at the last ':' (so a Windows drive letter stays with its path);
    /// the key is <c>null</c> for one PEM holding both.
    /// </summary>
    public static (string CertificatePath, string? KeyPath) SplitPemPair(string pair)
    {
        var colon = pair.LastIndexOf(':');
        return colon > 1 ? (pair[..colon], pair[(colon + 1)..]) : (pair, null);
    }

    /// <summary>Writes rows under headers, each column as wide as its widest cell.</summary>
    public static void WriteTable(string[] headers, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(headers).ToList();
        var widths = headers.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            Console.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))));
        }
    }
}
