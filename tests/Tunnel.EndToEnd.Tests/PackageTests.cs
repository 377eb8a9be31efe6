using System.Net;
using System.Net.Sockets;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

/// <summary>
/// The path of the README's "Use it in your app": packages packed from this tree to a local feed, the edge
/// installed as a .NET tool, an app made from the SDK's <c>web</c> template with the package and the one
/// line, a request through the edge (tests/package/new-app-through-packed-edge.sh).
/// </summary>
public class PackageTests(ITestOutputHelper output)
{
    // Packing five projects, installing the tool and building a new app: about 30 s on a quiet machine.
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromMinutes(8);

    [Fact]
    public async Task A_new_web_app_with_the_package_and_the_one_line_is_served_through_an_edge_installed_from_the_tool_package()
    {
        var work = Directory.CreateTempSubdirectory("tunnel-package-").FullName;
        try
        {
            var script = Path.Combine(Repository.Root, "tests", "package", "new-app-through-packed-edge.sh");
            var result = await Cli.RunAsync("/bin/bash", [script, work, FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture)], ScriptTimeout);
            output.WriteLine(result.Stdout);
            output.WriteLine(result.Stderr);
            Assert.True(result.ExitCode == 0, Cli.Describe(result));
            Assert.Contains("answer: Hello World!", result.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
