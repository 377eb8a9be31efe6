using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// Gives back the memory a burst of tunnel registrations left behind. Hundreds of TLS handshakes at
/// once (an edge restart, a fleet of origins reconnecting) leave tens of megabytes: handshake objects
/// that lived long enough to be promoted and then died, which an idle edge's GC may not look at again
/// for hours, and OpenSSL's freed handshake memory, which glibc keeps in its arenas for good. One
/// compacting collection that also decommits the GC's free regions, then <c>malloc_trim</c>, returns
/// both; it pauses the process once, for milliseconds per ten megabytes of live objects.
/// </summary>
internal static class MemoryTrim
{
    /// <summary>Collects, compacts and decommits, then trims the C heap; returns the resident set before and after.</summary>
    public static (long ResidentBefore, long ResidentAfter, TimeSpan Took) Run()
    {
        var before = Environment.WorkingSet;
        var started = Stopwatch.GetTimestamp();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        TrimNativeHeap();
        return (before, Environment.WorkingSet, Stopwatch.GetElapsedTime(started));
    }

    private static void TrimNativeHeap()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (musl has no malloc_trim): its allocator keeps what it keeps.
        }
    }

    // DllImport rather than LibraryImport: the call marshals nothing, and the project stays free of unsafe code.
    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);
}
