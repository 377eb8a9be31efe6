using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Tunnel.Edge.Cluster;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A single-member etcd (Debian's <c>etcd-server</c>) on loopback ports the OS picked, with its data in
/// a temporary directory. It can be killed and started again on the same data (on new ports: a
/// <see cref="FaultProxy"/> in front gives the edges one address throughout). etcd cannot listen on
/// port 0 itself (its JSON gateway dials the configured address, port 0 included), so the ports are
/// ones the OS just handed out; a start that loses one to another process is retried on new ones.
/// </summary>
public sealed partial class EtcdProcess : IAsyncDisposable
{
    private readonly string _dataDirectory;
    private readonly List<string> _output = [];
    private readonly StoreTls? _tls;
    private EtcdLogin? _login;
    private Process? _process;

    private readonly bool _clientCertificateRequired;

    private EtcdProcess(string dataDirectory, StoreTls? tls, bool clientCertificateRequired)
    {
        _dataDirectory = dataDirectory;
        _tls = tls;
        _clientCertificateRequired = clientCertificateRequired;
    }

    /// <summary>
    /// TLS for the client port: etcd serves <paramref name="CertificatePath"/> and requires a client
    /// certificate from <paramref name="CaPath"/> (<c>--client-cert-auth</c>). The certificate needs both
    /// usages: etcd's JSON gateway dials etcd's own gRPC port with it.
    /// </summary>
    public sealed record StoreTls(string CaPath, string CertificatePath, string KeyPath);

    /// <summary>The client URL, <c>http://127.0.0.1:PORT</c> (<c>https</c> with TLS), of the running process.</summary>
    public string ClientUrl { get; private set; } = "";

    /// <summary>The client port of the running process.</summary>
    public int ClientPort { get; private set; }

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
    /// Starts etcd; with <paramref name="rootPassword"/>, authentication is enabled and only the user <c>root</c>
    /// with that password may read or write (with TLS, <c>--client-cert-auth</c> is then left off, so that
    /// a certificate's name does not stand in for the login).
    /// </summary>
    public static async Task<EtcdProcess> StartAsync(StoreTls? tls = null, string? rootPassword = null)
    {
        var etcd = new EtcdProcess(Directory.CreateTempSubdirectory("tunnel-etcd-").FullName, tls, clientCertificateRequired: rootPassword is null);
        await etcd.RunAsync();
        if (rootPassword is not null)
        {
            await etcd.EnableAuthenticationAsync(rootPassword);
        }

        return etcd;
    }

    /// <summary>Adds the user and role <c>root</c> and turns authentication on, through the JSON gateway as etcdctl would.</summary>
    private async Task EnableAuthenticationAsync(string rootPassword)
    {
        // With TLS, etcd asks for a client certificate whenever it has a CA to check one with.
        using var certificate = _tls is null ? null : System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(_tls.CertificatePath, _tls.KeyPath);
        using var client = new HttpClient(new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = IssuedByTestCa, ClientCertificates = certificate is null ? null : [certificate] },
        })
        { BaseAddress = new Uri(ClientUrl) };
        foreach (var (path, body) in new[]
        {
            ("/v3/auth/role/add", """{"name":"root"}"""),
            ("/v3/auth/user/add", $$"""{"name":"root","password":"{{rootPassword}}"}"""),
            ("/v3/auth/user/grant", """{"user":"root","role":"root"}"""),
            ("/v3/auth/enable", "{}"),
        })
        {
            using var response = await client.PostAsync(path, new StringContent(body));
            Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        _login = new EtcdLogin("root", rootPassword);
    }

    private bool IssuedByTestCa(object sender, System.Security.Cryptography.X509Certificates.X509Certificate? certificate, System.Security.Cryptography.X509Certificates.X509Chain? chain, System.Net.Security.SslPolicyErrors errors)
    {
        if (certificate is null || _tls is null)
        {
            return false;
        }

        using var pinned = new System.Security.Cryptography.X509Certificates.X509Chain();
        pinned.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
        pinned.ChainPolicy.CustomTrustStore.ImportFromPemFile(_tls.CaPath);
        pinned.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
        using var leaf = new System.Security.Cryptography.X509Certificates.X509Certificate2(certificate);
        return pinned.Build(leaf);
    }

    /// <summary>Kills etcd at once (SIGKILL), as a crash would.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Starts etcd again on the same data (new ports).</summary>
    public Task RestartAsync() => RunAsync();

    /// <summary>Every key under a prefix, read through the same JSON gateway the edges use.</summary>
    public async Task<IReadOnlyList<KeyValuePair<string, string>>> RangeAsync(string prefix)
    {
        using var gateway = new EtcdGateway([ClientUrl], TimeSpan.FromSeconds(5), _tls is null ? null : EtcdTlsOptions.From(new ClusterOptions
        {
            StoreCaPath = _tls.CaPath,
            StoreCertificatePath = _tls.CertificatePath,
            StoreKeyPath = _tls.KeyPath,
        }), _login);
        var (_, pairs) = await gateway.RangePrefixAsync(prefix, CancellationToken.None);
        return pairs;
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task RunAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RunOnceAsync();
                return;
            }
            catch (InvalidOperationException) when (attempt < 3 && Output.Contains("address already in use", StringComparison.Ordinal))
            {
                await KillAsync();
            }
        }
    }

    private static int FreePort()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private async Task RunOnceAsync()
    {
        _process?.Dispose();
        var client = $"{(_tls is null ? "http" : "https")}://127.0.0.1:{FreePort()}";
        var peer = $"http://127.0.0.1:{FreePort()}";
        Cli.Require("etcd");
        var start = new ProcessStartInfo("etcd")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["--name", "test", "--data-dir", _dataDirectory,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "test=" + peer,
            .. _tls is null ? [] : (string[])["--cert-file", _tls.CertificatePath, "--key-file", _tls.KeyPath, "--trusted-ca-file", _tls.CaPath],
            .. _tls is not null && _clientCertificateRequired ? (string[])["--client-cert-auth"] : []])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Cannot start etcd (apt-get install etcd-server).");
        _process = process;
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("etcd exited:\n" + Output));
        DataReceivedEventHandler handler = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_output)
            {
                _output.Add(e.Data);
            }

            var match = ServingLine().Match(e.Data);
            if (match.Success)
            {
                ready.TrySetResult(int.Parse(match.Groups["port"].Value, CultureInfo.InvariantCulture));
            }
        };
        process.OutputDataReceived += handler;
        process.ErrorDataReceived += handler;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            ClientPort = await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException("etcd did not start within 30 s:\n" + Output);
        }

        ClientUrl = $"{(_tls is null ? "http" : "https")}://127.0.0.1:{ClientPort}";

        // Serving means the listener is up; wait until a read answers (the member has elected itself).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await RangeAsync("/");
                return;
            }
            catch (EtcdException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    [GeneratedRegex(@"serving (insecure )?client requests on 127\.0\.0\.1:(?<port>\d+)")]
    private static partial Regex ServingLine();
}
