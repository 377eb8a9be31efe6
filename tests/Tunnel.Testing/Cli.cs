using System.Diagnostics;
using System.Text;

namespace Tunnel.Testing;

/// <summary>Runs a real client (curl, h2load) with a time limit and returns what it printed.</summary>
public static class Cli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    // The Debian package of each client the tests run, for the message when one is missing.
    private static readonly Dictionary<string, string> Packages = new(StringComparer.Ordinal)
    {
        ["curl"] = "curl",
        ["h2load"] = "nghttp2-client",
        ["nghttp"] = "nghttp2-client",
        ["node"] = "nodejs",
        ["etcd"] = "etcd-server",
        ["openssl"] = "openssl",
        ["nft"] = "nftables",
        ["ip"] = "iproute2",
        ["ssh"] = "openssh-client",
        ["ssh-keygen"] = "openssh-client",
        ["sshd"] = "openssh-server",
    };

    /// <summary>Fails the test at once, naming the package to install, when <paramref name="file"/> is not on the PATH.</summary>
    public static void Require(string file)
    {
        if (Path.IsPathRooted(file) || file.StartsWith("/bin/", StringComparison.Ordinal))
        {
            return;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        if (!path.Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, file))))
        {
            Assert.Fail($"{file} is not installed (Debian: apt-get install {Packages.GetValueOrDefault(file, file)}); `bash test.sh` as root installs what the tests need.");
        }
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> arguments, TimeSpan timeout)
    {
        Require(file);
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {file}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', start.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s.");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts a client whose output the test reads as it arrives (e.g. <c>curl -N</c> on an event stream).</summary>
    public static Process StartStreaming(string file, IEnumerable<string> arguments)
    {
        Require(file);
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {file}.");
    }

    public static Task<Result> BashAsync(string script, TimeSpan timeout) => RunAsync("/bin/bash", ["-c", "set -o pipefail; " + script], timeout);

    public static string Describe(Result result) => new StringBuilder().Append("exit ").Append(result.ExitCode).Append("; stdout: ").Append(result.Stdout).Append("; stderr: ").Append(result.Stderr).ToString();
}
