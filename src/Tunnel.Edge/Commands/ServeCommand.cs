using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Hosting;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Commands;

/// <summary><c>tunnel-edge serve</c>: builds the options from the file, the environment and the flags, and runs the edge.</summary>
internal sealed class ServeCommand
{
    /// <summary>The exit code when the edge cannot start (its options or files are wrong, a port is taken).</summary>
    private const int CannotStart = 2;

    private readonly Option<FileInfo?> _config = new("--config") { Description = "A JSON file with an \"Edge\" section (see the README for every key)." };
    private readonly Option<DirectoryInfo?> _dir = new("--dir") { Description = "Take ca.pem, edge.pem and edge.key from this directory (from init)." };
    private readonly ServeFlag[] _flags = ServeFlags.Create();

    /// <summary>Builds the command: <c>--config</c>, <c>--dir</c> and the flags of <see cref="ServeFlags"/>.</summary>
    public ServeCommand()
    {
        Command = new Command("serve", "Run the edge.") { _config, _dir };
        foreach (var flag in _flags)
        {
            Command.Options.Add(flag.Option);
        }

        Command.SetAction(async (result, cancellationToken) =>
        {
            EdgeOptions options;
            try
            {
                options = BuildOptions(result);
            }
            catch (ServeFlagException ex)
            {
                Console.Error.WriteLine($"tunnel-edge cannot start: {ex.Message}");
                return CannotStart;
            }

            return await RunAsync(options, cancellationToken).ConfigureAwait(false);
        });
    }

    /// <summary>The <c>serve</c> command.</summary>
    public Command Command { get; }

    /// <summary>
    /// The options, each key from the first of: the flags, the environment (<c>TUNNEL_EDGE_</c>), the JSON
    /// file, the files of the edge directory, the defaults. List flags add to the configured lists, except
    /// those that replace them.
    /// </summary>
    /// <exception cref="ServeFlagException">A flag's value cannot be used.</exception>
    public EdgeOptions BuildOptions(ParseResult result)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(DirectoryFiles(result.GetValue(_dir)));
        if (result.GetValue(_config) is { } file)
        {
            configuration.AddJsonFile(file.FullName, optional: false);
        }

        configuration.AddEnvironmentVariables("TUNNEL_EDGE_");
        var options = new EdgeOptions();
        configuration.Build().GetSection(EdgeOptions.SectionName).Bind(options);

        // Bound apart, over the options, so list flags add to the lists (or replace them) rather than overwrite items by index.
        var given = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var flag in _flags)
        {
            var values = flag.Values(result).ToList();
            if (values.Count > 0)
            {
                flag.Replaces?.Invoke(options);
            }

            foreach (var (key, value) in values)
            {
                given[key] = value;
            }
        }

        new ConfigurationBuilder().AddInMemoryCollection(given).Build().GetSection(EdgeOptions.SectionName).Bind(options);
        return options;
    }

    /// <summary>The paths an edge directory (from init) supplies when the configuration names none.</summary>
    private static Dictionary<string, string?> DirectoryFiles(DirectoryInfo? directoryInfo)
    {
        var files = new Dictionary<string, string?>();
        if (directoryInfo is null)
        {
            return files;
        }

        var directory = new EdgeDirectory(directoryInfo.FullName);
        var section = EdgeOptions.SectionName + ":";
        files[section + nameof(EdgeOptions.CaCertificatePath)] = directory.TrustedCasPath;
        files[section + nameof(EdgeOptions.ServerCertificatePath)] = directory.File(EdgeDirectory.ServerCertificateFile);
        files[section + nameof(EdgeOptions.ServerKeyPath)] = directory.File(EdgeDirectory.ServerKeyFile);
        files[section + nameof(EdgeOptions.Acme) + ":" + nameof(Certificates.Acme.AcmeOptions.StoragePath)] = directory.File(EdgeDirectory.AcmeFolder);
        files[section + nameof(EdgeOptions.RevocationListPath)] = directory.File(EdgeDirectory.RevocationsFile);
        files[section + nameof(EdgeOptions.CredentialRegistryPath)] = directory.File(EdgeDirectory.RegistryFile);
        if (File.Exists(directory.File(EdgeDirectory.AdminTokenFile)))
        {
            files[section + nameof(EdgeOptions.AdminTokenPath)] = directory.File(EdgeDirectory.AdminTokenFile);
        }

        return files;
    }

    private static async Task<int> RunAsync(EdgeOptions options, CancellationToken cancellationToken)
    {
        var arenas = NativeHeapArenas.LimitToCores();
        EdgeServer edge;
        try
        {
            edge = EdgeServer.Create(options);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or FormatException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"tunnel-edge cannot start: {ex.Message}");
            return CannotStart;
        }

        await using (edge.ConfigureAwait(false))
        {
            await edge.StartAsync(cancellationToken).ConfigureAwait(false);
            if (arenas is { } count)
            {
                EdgeLog.NativeHeapArenasLimited(edge.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Hosting"), count);
            }

            var https = edge.VisitorHttpsEndPoint is { } endPoint ? $" and https://{endPoint}" : "";
            var admin = edge.AdminEndPoint is { } adminEndPoint ? $", status, metrics and admin API on http://{adminEndPoint}/" : "";
            var peers = edge.PeerEndPoint is { } peerEndPoint ? $", peers on https://{peerEndPoint} (advertised as {edge.PeerAdvertisedAddress})" : "";
            Console.WriteLine($"tunnel-edge {options.Name}: tunnels on {edge.TunnelEndPoint}, visitors on http://{edge.VisitorEndPoint}{https}{admin}{peers}");
            await edge.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        }

        return 0;
    }
}
