using System.Globalization;
using System.Runtime.InteropServices;

namespace Tunnel.Bench;

/// <summary>
/// CPU time spent by each part of a setup during one load run: the load generator, the relay's
/// processes (the edge, nginx, sshd and ssh, PageKite's two ends) and the app, from Linux's own
/// accounting (<c>/proc/&lt;pid&gt;/stat</c> for running processes, <c>getrusage(RUSAGE_CHILDREN)</c>
/// for the load generator once it has exited), and how busy the machine's cores were meanwhile
/// (<c>/proc/stat</c>). On two cores that every process shares, a setup's rate is bounded by the CPU
/// all its parts spend per request, so this says where a ratio in the main table comes from.
/// </summary>
internal static partial class CpuMeter
{
    /// <summary>Linux's USER_HZ, the unit of <c>/proc</c>'s CPU times: 100 on every mainstream architecture.</summary>
    private const double TicksPerSecond = 100;

    /// <summary>A reading before or after a run.</summary>
    public readonly record struct Reading(double LoadGenerator, double Relay, double App, long BusyTicks, long AllTicks, long RelayMemory);

    /// <summary>
    /// What one run spent, in CPU seconds, the cores' mean busy count (2.0: both cores all the time),
    /// and the relay's memory at the end of the run (its processes' proportional set size, PSS, in
    /// bytes: pages shared between them, such as nginx's workers', counted once in all).
    /// </summary>
    public readonly record struct Spent(double LoadGenerator, double Relay, double App, double CoresBusy, long RelayMemory)
    {
        public double All => LoadGenerator + Relay + App;
    }

    /// <param name="relayRoots">The relay's processes.</param>
    /// <param name="appPid">The app's process.</param>
    /// <param name="driverIsLoadGenerator">The load comes from this driver itself (TCP transfers, new TLS connections): its own CPU time counts as the load generator's.</param>
    public static Reading Read(IReadOnlyList<int> relayRoots, int appPid, bool driverIsLoadGenerator = false)
    {
        var (busy, all) = MachineTicks();
        var relay = Tree(relayRoots);
        var loadGenerator = ChildrenSeconds() + (driverIsLoadGenerator ? Environment.CpuUsage.TotalTime.TotalSeconds : 0);
        return new Reading(loadGenerator, relay.Sum(ProcessSeconds), ProcessSeconds(appPid), busy, all, relay.Sum(ProportionalBytes));
    }

    public static Spent Between(Reading before, Reading after)
    {
        var ticks = after.AllTicks - before.AllTicks;
        var cores = ticks > 0 ? Environment.ProcessorCount * (after.BusyTicks - before.BusyTicks) / (double)ticks : 0;
        return new Spent(after.LoadGenerator - before.LoadGenerator, after.Relay - before.Relay, after.App - before.App, cores, after.RelayMemory);
    }

    /// <summary>User plus system CPU seconds of one process so far (0 when it is gone).</summary>
    private static double ProcessSeconds(int pid)
    {
        var fields = StatFields(pid);
        return fields is null ? 0 : (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }

    /// <summary>The given processes and every live descendant (nginx's workers, sshd's session processes).</summary>
    private static HashSet<int> Tree(IReadOnlyList<int> roots)
    {
        if (roots.Count == 0)
        {
            return [];
        }

        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), CultureInfo.InvariantCulture, out var pid) && StatFields(pid) is { } fields)
            {
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            }
        }

        var members = new HashSet<int>(roots);
        bool added;
        do
        {
            added = false;
            foreach (var (pid, parent) in parents)
            {
                if (members.Contains(parent) && members.Add(pid))
                {
                    added = true;
                }
            }
        }
        while (added);

        return members;
    }

    /// <summary>A process's proportional set size (<c>Pss</c> in <c>/proc/&lt;pid&gt;/smaps_rollup</c>) in bytes; 0 when it is gone.</summary>
    private static long ProportionalBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/smaps_rollup"))
            {
                if (line.StartsWith("Pss:", StringComparison.Ordinal))
                {
                    return long.Parse(line["Pss:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return 0;
    }

    /// <summary>
    /// The fields of <c>/proc/&lt;pid&gt;/stat</c> after the command name (index 0 is the state, 1 the
    /// parent, 11 and 12 user and system time), or <c>null</c> when the process is gone.
    /// </summary>
    private static string[]? StatFields(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // The command name is in parentheses and may itself hold spaces or parentheses.
        var end = text.LastIndexOf(')');
        return end < 0 ? null : text[(end + 2)..].Split(' ');
    }

    /// <summary>Busy and total ticks of all cores since boot, from the first line of <c>/proc/stat</c>.</summary>
    private static (long Busy, long All) MachineTicks()
    {
        var line = File.ReadLines("/proc/stat").First();
        var values = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var all = values.Sum();
        var idle = values[3] + values[4]; // idle, iowait
        return (all - idle, all);
    }

    /// <summary>CPU seconds of this process's children that have exited and been waited for: the load generators run so far.</summary>
    private static double ChildrenSeconds()
    {
        const int RusageChildren = -1;
        if (GetResourceUsage(RusageChildren, out var usage) != 0)
        {
            throw new InvalidOperationException($"getrusage failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return usage.UserSeconds + usage.UserMicroseconds / 1e6 + usage.SystemSeconds + usage.SystemMicroseconds / 1e6;
    }

    [LibraryImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    private static partial int GetResourceUsage(int who, out ResourceUsage usage);

    /// <summary>struct rusage on 64-bit Linux: two timevals, then 14 longs this meter does not read (144 bytes in all).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 144)]
    private struct ResourceUsage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
    }
}
