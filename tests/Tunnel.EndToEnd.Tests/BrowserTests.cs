using Tunnel.Edge;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;
using Tunnel.EndToEnd.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Tunnel.EndToEnd.Tests;

public class BrowserTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_real_browser_loads_the_page_over_https_and_gets_websocket_and_event_stream_messages_through_the_tunnel()
    {
        using var sitePki = new TestPki();
        using var site = CertificateIssuer.IssueSiteCertificate(sitePki.Ca, [TunnelHarness.Hostname], TimeSpan.FromDays(1));
        var certificate = Path.Combine(sitePki.Directory, "site.pem");
        var key = Path.Combine(sitePki.Directory, "site.key");
        CertificateIssuer.WritePem(site, certificate, key);

        await using var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [new VisitorCertificateFile { CertificatePath = certificate, KeyPath = key }];
        });
        await harness.StartOriginAsync();
        var httpsPort = harness.Edge.VisitorHttpsEndPoint!.Port;

        // The site certificate is from a test CA the browser does not know: skip that check only.
        await using var browser = await HeadlessBrowser.StartAsync($"--host-resolver-rules=MAP {TunnelHarness.Hostname} 127.0.0.1", "--ignore-certificate-errors");
        await using var page = await browser.OpenAsync($"https://{TunnelHarness.Hostname}:{httpsPort}/app");

        await page.WaitUntilAsync("document.querySelectorAll('#ws li').length >= 3 && document.querySelectorAll('#sse li').length >= 3", TimeSpan.FromSeconds(20), "the page shows the echoes and the events");
        var scheme = (await page.EvaluateAsync("document.getElementById('scheme').textContent"))!.GetValue<string>();
        var webSocket = (await page.EvaluateAsync("[...document.querySelectorAll('#ws li')].map(li => li.textContent).join('|')"))!.GetValue<string>();
        var events = (await page.EvaluateAsync("[...document.querySelectorAll('#sse li')].map(li => li.textContent).join('|')"))!.GetValue<string>();
        output.WriteLine($"{scheme} {webSocket} {events}");
        Assert.Equal("https:", scheme);
        Assert.Equal("echo: ping 1|echo: ping 2|echo: ping 3", webSocket);
        Assert.Equal("event: 0|event: 1|event: 2", events);

        var screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "browser-app.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(screenshot);
        Assert.True(new FileInfo(screenshot).Length > 1000);
    }
}
