using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>Writes the processes' output to the test log at the end, for when it fails.</summary>
public sealed class WriteOnDispose(ITestOutputHelper output, Func<string> text) : IDisposable
{
    public void Dispose() => output.WriteLine(text());
}
