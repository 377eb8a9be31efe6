namespace Tunnel.Testing;

public static class Wait
{
    /// <summary>Polls a condition until it holds or the timeout passes; fails the test with a message then.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0.#} s waiting until {what}.");
            }

            await Task.Delay(20);
        }
    }
}
