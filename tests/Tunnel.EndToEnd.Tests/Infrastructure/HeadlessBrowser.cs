using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Debian's Chromium, headless, driven over the DevTools protocol: open a page, evaluate JavaScript
/// in it, take a screenshot. Started with the flags this machine needs (no background networking,
/// no sandbox as root) and its own empty profile; killed on dispose.
/// </summary>
public sealed partial class HeadlessBrowser : IAsyncDisposable
{
    public const string ExecutablePath = "/usr/bin/chromium";

    private readonly Process _process;
    private readonly string _profile;
    private readonly int _port;

    private HeadlessBrowser(Process process, string profile, int port)
    {
        _process = process;
        _profile = profile;
        _port = port;
    }

    public static async Task<HeadlessBrowser> StartAsync(params string[] extraArguments)
    {
        Assert.True(File.Exists(ExecutablePath), $"chromium is not installed at {ExecutablePath} (Debian: apt-get install chromium); `bash test.sh` as root installs what the tests need.");
        var profile = Directory.CreateTempSubdirectory("tunnel-chromium-").FullName;
        var start = new ProcessStartInfo(ExecutablePath) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in (string[])["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            $"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", .. extraArguments, "about:blank"])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Cannot start chromium.");
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null && DevToolsLine().Match(e.Data) is { Success: true } match)
            {
                listening.TrySetResult(int.Parse(match.Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var port = await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return new HeadlessBrowser(process, profile, port);
    }

    /// <summary>Opens a new tab on <paramref name="url"/> and connects to it.</summary>
    public async Task<Page> OpenAsync(string url)
    {
        using var http = new HttpClient();
        using var response = await http.PutAsync($"http://127.0.0.1:{_port}/json/new?{Uri.EscapeDataString(url)}", null);
        response.EnsureSuccessStatusCode();
        var target = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri(target["webSocketDebuggerUrl"]!.GetValue<string>()), CancellationToken.None);
        return new Page(socket);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"DevTools listening on ws://[^:]+:(?<port>\d+)/")]
    private static partial Regex DevToolsLine();

    /// <summary>One tab, spoken to over its DevTools WebSocket.</summary>
    public sealed class Page(ClientWebSocket socket) : IAsyncDisposable
    {
        private int _nextId;

        /// <summary>Evaluates a JavaScript expression and returns its value as JSON.</summary>
        public async Task<JsonNode?> EvaluateAsync(string expression)
        {
            var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true });
            return result?["result"]?["value"];
        }

        /// <summary>Polls an expression until it is true, bounded by <paramref name="timeout"/>.</summary>
        public async Task WaitUntilAsync(string expression, TimeSpan timeout, string what)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (await TryEvaluateAsync(expression) is not true)
            {
                if (DateTime.UtcNow > deadline)
                {
                    var text = await EvaluateAsync("document.documentElement.outerHTML");
                    Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting until {what}. The page shows: {text}");
                }

                await Task.Delay(100);
            }
        }

        /// <summary>
        /// The expression's value as a boolean, or <c>null</c> while the page is between documents (a
        /// navigation or a redirect in progress has no execution context to evaluate in yet).
        /// </summary>
        private async Task<bool?> TryEvaluateAsync(string expression)
        {
            try
            {
                return (await EvaluateAsync(expression))?.GetValue<bool>();
            }
            catch (InvalidOperationException ex) when (ex.Message.Contains("execution context", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }
        }

        /// <summary>Saves a PNG screenshot of the page.</summary>
        public async Task ScreenshotAsync(string path)
        {
            var result = await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
            await File.WriteAllBytesAsync(path, Convert.FromBase64String(result!["data"]!.GetValue<string>()));
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception ex) when (ex is WebSocketException or TimeoutException)
            {
            }

            socket.Dispose();
        }

        private async Task<JsonNode?> SendAsync(string method, JsonObject parameters)
        {
            var id = Interlocked.Increment(ref _nextId);
            var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters };
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, timeout.Token);
            var buffer = new byte[1024 * 1024];
            while (true)
            {
                using var received = new MemoryStream();
                WebSocketReceiveResult part;
                do
                {
                    part = await socket.ReceiveAsync(buffer, timeout.Token);
                    received.Write(buffer, 0, part.Count);
                }
                while (!part.EndOfMessage);

                var reply = JsonNode.Parse(received.ToArray());
                if (reply?["id"]?.GetValue<int>() == id)
                {
                    if (reply["error"] is { } error)
                    {
                        throw new InvalidOperationException($"DevTools {method} failed: {error.ToJsonString()}");
                    }

                    return reply["result"];
                }
            }
        }
    }
}
