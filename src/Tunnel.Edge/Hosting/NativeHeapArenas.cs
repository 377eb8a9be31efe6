using System.Runtime.InteropServices;

namespace Tunnel.Edge.Hosting;

/// <summary>
/// Caps glibc's malloc arenas at one per core for the edge process. OpenSSL allocates each
/// connection's state from whichever arena its handshake's thread is using; glibc's default of eight
/// arenas per core spreads a few thousand connections over many partly used heaps. Measured with 1000
/// idle tunnels (bench/run --edge-only), one arena per core (2 here) took the per-tunnel figure from
/// 64.3-65.1 to 61.3-62.5 KiB. One arena per core keeps malloc uncontended: at most that many threads
/// run at once. An operator's own <c>MALLOC_ARENA_MAX</c> wins; only <c>tunnel-edge serve</c> applies
/// this, since it changes the whole process (an app that hosts <see cref="EdgeServer"/> itself decides).
/// </summary>
internal static class NativeHeapArenas
{
    private const int MArenaMax = -8; // M_ARENA_MAX in malloc.h

    /// <summary>Applies the cap; returns the arenas set, or null when left alone (set by the operator, not glibc).</summary>
    public static int? LimitToCores()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is not null)
        {
            return null;
        }

        var arenas = Math.Max(1, Environment.ProcessorCount);
        try
        {
            return MallOpt(MArenaMax, arenas) == 1 ? arenas : null;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            return null; // Not glibc (musl has one heap and no mallopt arenas).
        }
    }

    // DllImport rather than LibraryImport: the call marshals nothing, and the project stays free of unsafe code.
    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int MallOpt(int parameter, int value);
}
