using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

public class BrowserTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_real_browser_loads_the_page_and_gets_websocket_and_event_stream_messages_through_the_tunnel()
    {
        await using var harness = await TunnelHarness.StartAsync();
        await harness.StartOriginAsync();
        await using var browser = await HeadlessBrowser.StartAsync($"--host-resolver-rules=MAP {TunnelHarness.Hostname} 127.0.0.1");
        await using var page = await browser.OpenAsync(harness.VisitorUrl("/app"));

        await page.WaitUntilAsync("document.querySelectorAll('#ws li').length >= 3 && document.querySelectorAll('#sse li').length >= 3", TimeSpan.FromSeconds(20), "the page shows the echoes and the events");
        var webSocket = (await page.EvaluateAsync("[...document.querySelectorAll('#ws li')].map(li => li.textContent).join('|')"))!.GetValue<string>();
        var events = (await page.EvaluateAsync("[...document.querySelectorAll('#sse li')].map(li => li.textContent).join('|')"))!.GetValue<string>();
        output.WriteLine(webSocket);
        output.WriteLine(events);
        Assert.Equal("echo: ping 1|echo: ping 2|echo: ping 3", webSocket);
        Assert.Equal("event: 0|event: 1|event: 2", events);

        var screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "browser-app.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(screenshot);
        Assert.True(new FileInfo(screenshot).Length > 1000);
    }
}
