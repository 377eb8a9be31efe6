namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>Paths in the source tree the tests run from.</summary>
public static class Repository
{
    /// <summary>The folder that holds Tunnel.sln.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Tunnel.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Tunnel.sln not found above " + AppContext.BaseDirectory);
    }
}
