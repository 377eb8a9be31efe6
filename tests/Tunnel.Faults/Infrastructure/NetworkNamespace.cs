using System.Globalization;

namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// A network namespace of the test's own (<c>ip netns add</c>) with only its loopback up, so faults
/// applied inside it (packet loss with nftables, a rate limit with <c>tc tbf</c>) touch nothing else on
/// the machine. Deleted on dispose, which also ends every socket in it.
/// </summary>
/// <remarks>
/// Needs root and iproute2; packet loss needs nftables (<c>nft</c>). This kernel has no <c>sch_netem</c>,
/// so delay is added by <see cref="LinkEmulator"/> in user space, not by <c>tc netem</c>.
/// </remarks>
public sealed class NetworkNamespace : IAsyncDisposable
{
    private NetworkNamespace(string name)
    {
        Name = name;
    }

    public string Name { get; }

    /// <summary>Creates a namespace with loopback up, or fails the test saying what is missing.</summary>
    public static async Task<NetworkNamespace> CreateAsync()
    {
        var name = "tfault-" + Guid.NewGuid().ToString("N")[..8];
        await RunOrFailAsync("ip", ["netns", "add", name], "creating a network namespace needs root and iproute2");
        var ns = new NetworkNamespace(name);
        try
        {
            await ns.ExecOrFailAsync(["ip", "link", "set", "lo", "up"], "bringing up loopback in the namespace");
        }
        catch
        {
            await ns.DisposeAsync();
            throw;
        }

        return ns;
    }

    /// <summary>Drops <paramref name="percent"/> % of the packets on loopback to or from <paramref name="port"/>, at random.</summary>
    public async Task DropPacketsAsync(int percent, int port)
    {
        var p = port.ToString(CultureInfo.InvariantCulture);
        var n = percent.ToString(CultureInfo.InvariantCulture);
        await ExecOrFailAsync(["nft", "add", "table", "inet", "faults"], "packet loss needs nftables (apt-get install nftables)");
        await ExecOrFailAsync(["nft", "add chain inet faults out { type filter hook output priority 0 ; }"], "adding an nftables chain");
        await ExecOrFailAsync(["nft", $"add rule inet faults out tcp dport {p} numgen random mod 100 < {n} counter drop"], "adding the loss rule");
        await ExecOrFailAsync(["nft", $"add rule inet faults out tcp sport {p} numgen random mod 100 < {n} counter drop"], "adding the loss rule");
    }

    /// <summary>How many packets the loss rules dropped so far.</summary>
    public async Task<long> DroppedPacketsAsync()
    {
        var result = await Cli.RunAsync("ip", ["netns", "exec", Name, "nft", "list", "table", "inet", "faults"], TimeSpan.FromSeconds(20));
        return System.Text.RegularExpressions.Regex.Matches(result.Stdout, @"counter packets (\d+)")
            .Sum(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    public async Task ExecOrFailAsync(string[] command, string what)
    {
        await RunOrFailAsync("ip", ["netns", "exec", Name, .. command], what);
    }

    public async ValueTask DisposeAsync()
    {
        await Cli.RunAsync("ip", ["netns", "del", Name], TimeSpan.FromSeconds(20));
    }

    private static async Task RunOrFailAsync(string file, string[] arguments, string what)
    {
        Cli.Result result;
        try
        {
            result = await Cli.RunAsync(file, arguments, TimeSpan.FromSeconds(20));
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            Assert.Fail($"{what}: cannot run {file}: {ex.Message}");
            throw;
        }

        Assert.True(result.ExitCode == 0, $"{what}: {file} {string.Join(' ', arguments)} failed: {Cli.Describe(result)}");
    }
}
