using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Identity;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Debian's <c>pebble</c>, the ACME test CA Let's Encrypt publishes, on loopback ports the OS just handed
/// out, validating challenges against the given HTTP and TLS ports and resolving names through the given
/// DNS server. Debian's package ships no certificate for pebble's own HTTPS listener, so one is issued here
/// from a fresh test CA (<see cref="DirectoryCaPath"/>, what the edge trusts for the directory only).
/// Killed on dispose; every wait bounded.
/// </summary>
public sealed class PebbleProcess : IAsyncDisposable
{
    // Pebble generates its CA and listens in well under a second; more means something is wrong.
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private const string ReadyLine = "ACME directory available";

    private readonly List<string> _output = [];
    private readonly string _directory;
    private Process? _process;

    private PebbleProcess(string directory, int port, int managementPort)
    {
        _directory = directory;
        Port = port;
        ManagementPort = managementPort;
    }

    /// <summary>The ACME directory URL.</summary>
    public string DirectoryUrl => $"https://127.0.0.1:{Port}/dir";

    /// <summary>The PEM of the CA that pebble's own HTTPS certificate chains to.</summary>
    public string DirectoryCaPath => Path.Combine(_directory, "listener-ca.pem");

    /// <summary>Pebble's own HTTPS certificate (for <c>localhost</c> and 127.0.0.1, issued by <see cref="DirectoryCaPath"/>) and its key.</summary>
    public (string CertificatePath, string KeyPath) Listener => (Path.Combine(_directory, "listener.pem"), Path.Combine(_directory, "listener.key"));

    public int Port { get; }

    public int ManagementPort { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output);
            }
        }
    }

    /// <summary>
    /// Starts pebble. <paramref name="httpPort"/> and <paramref name="tlsPort"/> are where it validates
    /// HTTP-01 and TLS-ALPN-01; <paramref name="dnsServer"/> resolves the names (and holds DNS-01 records);
    /// <paramref name="validitySeconds"/> sets the issued certificates' lifetime (pebble 2.4's
    /// <c>certificateValidityPeriod</c>).
    /// </summary>
    public static async Task<PebbleProcess> StartAsync(int httpPort, int tlsPort, IPEndPoint dnsServer, int? validitySeconds = null)
    {
        Cli.Require("pebble");
        var directory = Directory.CreateTempSubdirectory("tunnel-pebble-").FullName;
        var pebble = new PebbleProcess(directory, FreePort(), FreePort());
        using (var ca = CertificateIssuer.CreateCertificateAuthority("Pebble listener test CA", TimeSpan.FromDays(1)))
        using (var listener = CertificateIssuer.IssueServerCertificate(ca, ["localhost"], [IPAddress.Loopback], TimeSpan.FromDays(1)))
        {
            await File.WriteAllTextAsync(pebble.DirectoryCaPath, ca.ExportCertificatePem() + "\n");
            CertificateIssuer.WritePem(listener, Path.Combine(directory, "listener.pem"), Path.Combine(directory, "listener.key"));
        }

        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["listenAddress"] = $"127.0.0.1:{pebble.Port}",
            ["managementListenAddress"] = $"127.0.0.1:{pebble.ManagementPort}",
            ["certificate"] = Path.Combine(directory, "listener.pem"),
            ["privateKey"] = Path.Combine(directory, "listener.key"),
            ["httpPort"] = httpPort,
            ["tlsPort"] = tlsPort,
            ["ocspResponderURL"] = "",
            ["externalAccountBindingRequired"] = false,
        };
        if (validitySeconds is { } seconds)
        {
            config["certificateValidityPeriod"] = seconds;
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "pebble.json"), new System.Text.Json.Nodes.JsonObject { ["pebble"] = config }.ToJsonString());
        await pebble.RunAsync(dnsServer);
        return pebble;
    }

    /// <summary>Pebble's issuing root (management API <c>/roots/0</c>), written to a file for <c>curl --cacert</c>.</summary>
    public async Task<string> WriteRootAsync()
    {
        using var client = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, c, _, _) => IssuedByListenerCa(c) } });
        var pem = await client.GetStringAsync($"https://127.0.0.1:{ManagementPort}/roots/0").WaitAsync(TimeSpan.FromSeconds(10));
        var path = Path.Combine(_directory, "issuing-root.pem");
        await File.WriteAllTextAsync(path, pem);
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Whether <paramref name="certificate"/> is pebble's own HTTPS certificate (chains to <see cref="DirectoryCaPath"/>).</summary>
    public bool IssuedByListenerCa(X509Certificate? certificate)
    {
        if (certificate is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.ImportFromPemFile(DirectoryCaPath);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }

    private async Task RunAsync(IPEndPoint dnsServer)
    {
        var start = new ProcessStartInfo("pebble")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
            Environment =
            {
                ["PEBBLE_VA_NOSLEEP"] = "1",       // validate at once, not after a random sleep
                ["PEBBLE_WFE_NONCEREJECT"] = "0",  // the badNonce retry has its own unit test
                ["PEBBLE_AUTHZREUSE"] = "0",       // every order validates its challenge afresh
            },
        };
        foreach (var argument in (string[])["-config", Path.Combine(_directory, "pebble.json"), "-dnsserver", dnsServer.ToString()])
        {
            start.ArgumentList.Add(argument);
        }

        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = Process.Start(start) ?? throw new InvalidOperationException("Cannot start pebble (apt-get install pebble).");
        _process = process;
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("pebble exited: " + Output));
        DataReceivedEventHandler collect = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_output)
            {
                _output.Add(e.Data);
            }

            if (e.Data.Contains(ReadyLine, StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        process.OutputDataReceived += collect;
        process.ErrorDataReceived += collect;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(StartTimeout);
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"pebble did not start within {StartTimeout.TotalSeconds} s: {Output}");
        }
    }

    /// <summary>A loopback port the OS just handed out (pebble cannot listen on port 0 and report it).</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
