namespace Tunnel.Bench;

/// <summary>The edge's CA and an origin certificate for the benchmark host, made with tunnel-edge's own CLI.</summary>
internal sealed class Pki
{
    private Pki(string directory)
    {
        Directory = directory;
    }

    public string Directory { get; }

    public string CaCertificate => Path.Combine(Directory, "ca.pem");

    public string OriginCertificate => Path.Combine(Directory, "origin.pem");

    public string OriginKey => Path.Combine(Directory, "origin.key");

    public static async Task<Pki> CreateAsync(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var edge = Path.Combine(AppContext.BaseDirectory, "tunnel-edge.dll");
        await Tool.RunCheckedAsync("dotnet", [edge, "init", "--dir", directory, "--force"], TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        await Tool.RunCheckedAsync("dotnet", [edge, "issue", "--dir", directory, "--domain", Setups.Hostname, "--domain", Setups.PassthroughHostname, "--pem-out", Path.Combine(directory, "origin")], TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        return new Pki(directory);
    }
}
