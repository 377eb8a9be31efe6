using System.Text.RegularExpressions;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Runs nghttp (Debian's nghttp2-client), the HTTP/2 client that prints every frame it receives, and
/// reads the frames of the response stream from its verbose output.
/// </summary>
public static partial class Nghttp
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>One received frame: its type and flags.</summary>
    public sealed record Frame(string Type, int Flags, int Length)
    {
        public bool EndsStream => (Flags & 0x1) != 0;

        public override string ToString() => $"{Type}(flags=0x{Flags:x2}, length={Length})";
    }

    /// <summary>
    /// Sends one request to <paramref name="url"/> (the edge's address) with <paramref name="authority"/> as
    /// :authority and returns the frames received on its stream, in order.
    /// </summary>
    public static async Task<IReadOnlyList<Frame>> ResponseFramesAsync(string url, string authority, string method = "GET", byte[]? body = null, params string[] headers)
    {
        var arguments = new List<string> { "-v", "-n", "-H", ":authority: " + authority, "-H", ":method: " + method };
        foreach (var header in headers)
        {
            arguments.AddRange(["-H", header]);
        }

        string? bodyFile = null;
        if (body is not null)
        {
            bodyFile = Path.GetTempFileName();
            await File.WriteAllBytesAsync(bodyFile, body);
            arguments.AddRange(["-d", bodyFile]);
        }

        try
        {
            arguments.Add(url);
            var result = await Cli.RunAsync("nghttp", arguments, Timeout);
            Assert.True(result.ExitCode == 0, "nghttp " + string.Join(' ', arguments) + ": " + Cli.Describe(result));
            return StreamFrames(result.Stdout);
        }
        finally
        {
            if (bodyFile is not null)
            {
                File.Delete(bodyFile);
            }
        }
    }

    /// <summary>The frames received on the stream of the first response HEADERS in <paramref name="output"/>.</summary>
    private static List<Frame> StreamFrames(string output)
    {
        var frames = new List<(int Stream, Frame Frame)>();
        foreach (Match match in ReceivedFrame().Matches(output))
        {
            frames.Add((int.Parse(match.Groups["stream"].Value), new Frame(match.Groups["type"].Value, Convert.ToInt32(match.Groups["flags"].Value, 16), int.Parse(match.Groups["length"].Value))));
        }

        var responseStream = frames.FirstOrDefault(f => f.Frame.Type == "HEADERS").Stream;
        Assert.True(responseStream != 0, "nghttp received no response HEADERS:\n" + output);
        return [.. frames.Where(f => f.Stream == responseStream).Select(f => f.Frame)];
    }

    [GeneratedRegex(@"recv (?<type>[A-Z_]+) frame <length=(?<length>\d+), flags=0x(?<flags>[0-9a-f]+), stream_id=(?<stream>\d+)>")]
    private static partial Regex ReceivedFrame();
}
