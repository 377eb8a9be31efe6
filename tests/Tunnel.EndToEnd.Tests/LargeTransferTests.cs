using System.Security.Cryptography;
using System.Text.Json;
using HelloOrigin;
using Tunnel.EndToEnd.Tests.Infrastructure;

namespace Tunnel.EndToEnd.Tests;

public class LargeTransferTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Hostname = "big.test";
    private const long Size = 256L * 1024 * 1024;
    private const long MemoryLimit = 300L * 1000 * 1000;

    [Fact]
    public async Task A_256_MiB_download_and_upload_arrive_whole_with_both_processes_under_300_MB()
    {
        await using var processes = await TunnelProcesses.StartAsync(Hostname);
        var resolve = $"{Hostname}:{processes.VisitorPort}:127.0.0.1";
        var baseUrl = $"http://{Hostname}:{processes.VisitorPort}";

        // Wait (bounded) until the origin's tunnel carries a request.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var probe = await Cli.RunAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", resolve, baseUrl + "/"], TimeSpan.FromSeconds(10));
            if (probe.Stdout == "200")
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "the tunnel did not come up within 30 s:\n" + processes.Output);
            await Task.Delay(200);
        }

        var expectedDownload = PatternSha256(Size);
        var download = await Cli.BashAsync($"curl -sS --fail --http1.1 --resolve {resolve} '{baseUrl}/download?bytes={Size}' | tee >(wc -c >&2) | sha256sum", TimeSpan.FromMinutes(3));
        Assert.True(download.ExitCode == 0, Cli.Describe(download) + "\n" + processes.Output);
        Assert.Equal(expectedDownload, download.Stdout.Split(' ')[0]);
        Assert.Equal(Size.ToString(System.Globalization.CultureInfo.InvariantCulture), download.Stderr.Trim());

        var file = Path.Combine(processes.Pki.Directory, "upload.bin");
        var expectedUpload = WriteRandomFile(file, Size);
        var upload = await Cli.RunAsync("curl", ["-sS", "--fail", "--http2-prior-knowledge", "--resolve", resolve, "-X", "POST", "-T", file, baseUrl + "/upload"], TimeSpan.FromMinutes(3));
        Assert.True(upload.ExitCode == 0, Cli.Describe(upload) + "\n" + processes.Output);
        using var result = JsonDocument.Parse(upload.Stdout);
        Assert.Equal(Size, result.RootElement.GetProperty("bytes").GetInt64());
        Assert.Equal(expectedUpload, result.RootElement.GetProperty("sha256").GetString());

        var edgePeak = TunnelProcesses.PeakWorkingSet(processes.Edge);
        var originPeak = TunnelProcesses.PeakWorkingSet(processes.Origin);
        output.WriteLine($"peak working set: edge {edgePeak / 1e6:0} MB, origin {originPeak / 1e6:0} MB");
        Assert.True(edgePeak < MemoryLimit, $"the edge peaked at {edgePeak / 1e6:0} MB");
        Assert.True(originPeak < MemoryLimit, $"the origin peaked at {originPeak / 1e6:0} MB");
    }

    private static string PatternSha256(long size)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        for (long offset = 0; offset < size; offset += buffer.Length)
        {
            var chunk = (int)Math.Min(buffer.Length, size - offset);
            for (var i = 0; i < chunk; i++)
            {
                buffer[i] = HelloEndpoints.PatternByte(offset + i);
            }

            sha.AppendData(buffer, 0, chunk);
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static string WriteRandomFile(string path, long size)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1024 * 1024];
        using var stream = File.Create(path);
        for (long written = 0; written < size; written += buffer.Length)
        {
            RandomNumberGenerator.Fill(buffer);
            stream.Write(buffer);
            sha.AppendData(buffer);
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
