using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A private OpenSSH server on a loopback port, with its own host key and one client key allowed to log
/// in as the current user; stopped and its files removed on disposal. Needs root (sshd's privilege
/// separation) and Debian's openssh-server.
/// </summary>
public sealed class Sshd : IAsyncDisposable
{
    private const string Binary = "/usr/sbin/sshd";
    private readonly Process _process;
    private readonly string _directory;

    private Sshd(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The ssh client arguments that log in with the allowed key, without asking about the host key.</summary>
    public IReadOnlyList<string> ClientArguments =>
        ["-i", Path.Combine(_directory, "client"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"];

    public static async Task<Sshd> StartAsync()
    {
        if (!File.Exists(Binary))
        {
            Assert.Fail($"{Binary} is not installed (Debian: apt-get install openssh-server); `bash test.sh` as root installs what the tests need.");
        }

        Cli.Require("ssh-keygen");
        var directory = Directory.CreateTempSubdirectory("tunnel-sshd-").FullName;
        Directory.CreateDirectory("/run/sshd");
        foreach (var key in (string[])["host", "client"])
        {
            var made = await Cli.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(directory, key)], TimeSpan.FromSeconds(30));
            Assert.True(made.ExitCode == 0, Cli.Describe(made));
        }

        File.Copy(Path.Combine(directory, "client.pub"), Path.Combine(directory, "authorized_keys"));
        var port = FreePort();
        var config = Path.Combine(directory, "sshd_config");
        await File.WriteAllLinesAsync(config,
        [
            $"Port {port}",
            "ListenAddress 127.0.0.1",
            $"HostKey {Path.Combine(directory, "host")}",
            $"AuthorizedKeysFile {Path.Combine(directory, "authorized_keys")}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "PidFile none",
        ]);
        var process = Process.Start(new ProcessStartInfo(Binary) { ArgumentList = { "-D", "-e", "-f", config }, RedirectStandardError = true, RedirectStandardOutput = true })!;
        var sshd = new Sshd(process, directory, port);
        await Wait.UntilAsync(() => process.HasExited || Accepts(port), TimeSpan.FromSeconds(15), "sshd listens");
        if (process.HasExited)
        {
            Assert.Fail($"sshd exited: {await process.StandardError.ReadToEndAsync()}");
        }

        return sshd;
    }

    private static bool Accepts(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
