using System.Globalization;

namespace Tunnel.Faults.Infrastructure;

/// <summary>What the operator's <c>top</c> and <c>ls /proc/PID/fd</c> would show for a process: resident memory, open handles, threads.</summary>
public sealed record ProcessStats(long WorkingSet, int Handles, int Threads)
{
    public static ProcessStats Read(int pid)
    {
        long rss = 0;
        var threads = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
            {
                threads = int.Parse(line["Threads:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }

        return new ProcessStats(rss, Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length, threads);
    }

    public override string ToString() => $"{WorkingSet / (1024.0 * 1024):0.0} MiB, {Handles} handles, {Threads} threads";
}
