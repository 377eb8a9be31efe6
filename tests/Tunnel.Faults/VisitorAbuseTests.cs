using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Tunnel.Faults;

/// <summary>
/// Hostile visitors against an edge running as its own process: slowloris headers and bodies, 10,000
/// streams from one visitor, oversized and malformed headers, request smuggling, a flood of new
/// connections. Throughout, a visitor of another hostname is served promptly and the edge's memory
/// stays bounded.
/// </summary>
[Trait("Suite", "Fast")]
public class VisitorAbuseTests(VisitorAbuseTests.EdgeUnderAttack edge, ITestOutputHelper output) : IClassFixture<VisitorAbuseTests.EdgeUnderAttack>
{
    private const string Target = "hello.test";
    private const string Other = "other.test";

    // What "responsive" means on a loaded 2-core test machine: a human would not notice.
    private static readonly TimeSpan ResponsiveP99 = TimeSpan.FromSeconds(2);

    // What "bounded" means: the attacks below, unbounded, would take gigabytes (10,000 streams of
    // buffered bodies, 100 KB headers on hundreds of connections).
    private const long MemoryBound = 200L * 1024 * 1024;

    [Fact]
    public async Task Slowloris_headers_on_500_connections_are_cut_after_the_header_timeout_and_others_are_served()
    {
        var sockets = new List<Socket>();
        await using var watch = await AttackWatch.StartAsync(edge, output);
        try
        {
            for (var i = 0; i < 500; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(edge.Edge.VisitorEndPoint);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Target}\r\nX-Slow: "), SocketFlags.None);
                sockets.Add(socket);
            }

            // A byte a second on each, for 10 s: never a whole header block.
            for (var second = 0; second < 10; second++)
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
                foreach (var socket in sockets.Where(s => !RawVisitor.IsClosedByPeer(s)))
                {
                    try
                    {
                        await socket.SendAsync("a"u8.ToArray(), SocketFlags.None);
                    }
                    catch (SocketException)
                    {
                    }
                }
            }

            await watch.AssertResponsiveAndBoundedAsync("slowloris headers");

            // Kestrel's request-headers timeout (30 s) ends them all, trickle or not.
            await Wait.UntilAsync(() => sockets.All(RawVisitor.IsClosedByPeer), TimeSpan.FromSeconds(45), "the edge closes every slowloris connection");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task Connections_past_the_per_address_cap_are_closed_at_once_while_another_address_is_served()
    {
        // The edge's default: 256 open connections per visitor address (Limits:MaxConnectionsPerVisitor).
        const int Cap = 256;
        const int Opened = 300;
        var sockets = new List<Socket>();
        await using var watch = await AttackWatch.StartAsync(edge, output);
        try
        {
            for (var i = 0; i < Opened; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                // An address of its own: the edge lets go of held connections a moment after the
                // test closes them, and the next attack from 127.0.0.1 must not meet a full cap.
                socket.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.3"), 0));
                await socket.ConnectAsync(edge.Edge.VisitorEndPoint);
                sockets.Add(socket);
                try
                {
                    await socket.SendAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Target}\r\n"), SocketFlags.None);
                }
                catch (SocketException)
                {
                    // Closed by the edge already: past the cap.
                }
            }

            await Wait.UntilAsync(() => sockets.Count(RawVisitor.IsClosedByPeer) >= Opened - Cap, TimeSpan.FromSeconds(10), $"the edge closes the {Opened - Cap} connections past the cap");
            var closed = sockets.Count(RawVisitor.IsClosedByPeer);
            var figures = $"{Opened} held connections from one address: {closed} closed at once, {Opened - closed} held";
            output.WriteLine(figures);
            FiguresFile.Append("hostile visitors", figures);

            Assert.Equal(Opened - Cap, closed);
            await watch.AssertResponsiveAndBoundedAsync("connections past the per-address cap");
            Assert.True(edge.Edge.Process.CountLines(new Regex(@"Closed \d+ visitor connection\(s\) at a bound.*MaxConnectionsPerVisitor")) >= 1, "the edge logs the refusals");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    /// <remarks>The issue's own reproduction, at the edge's default 30 s request-headers timeout.</remarks>
    [FullFact]
    public async Task Silent_and_partial_preface_sockets_are_closed_by_the_request_headers_timeout_and_others_are_served()
    {
        var sockets = new List<Socket>();
        await using var watch = await AttackWatch.StartAsync(edge, output);
        var started = DateTime.UtcNow;
        try
        {
            for (var i = 0; i < 50; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(edge.Edge.VisitorEndPoint);
                if (i % 2 == 1)
                {
                    await socket.SendAsync("PRI * HTTP/2.0\r\n"u8.ToArray(), SocketFlags.None);
                }

                sockets.Add(socket);
            }

            await Wait.UntilAsync(() => sockets.All(RawVisitor.IsClosedByPeer), TimeSpan.FromSeconds(45), "the edge closes every silent and partial-preface connection");
            var figures = $"25 silent and 25 partial-preface connections: all closed after {(DateTime.UtcNow - started).TotalSeconds:0.0} s (request-headers timeout 30 s)";
            output.WriteLine(figures);
            FiguresFile.Append("hostile visitors", figures);
            await watch.AssertResponsiveAndBoundedAsync("silent and partial-preface connections");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task Slowloris_bodies_on_200_connections_are_cut_by_the_minimum_data_rate_and_others_are_served()
    {
        var sockets = new List<Socket>();
        await using var watch = await AttackWatch.StartAsync(edge, output);
        try
        {
            for (var i = 0; i < 200; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(edge.Edge.VisitorEndPoint);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"POST /echo HTTP/1.1\r\nHost: {Target}\r\nContent-Length: 100000\r\n\r\n"), SocketFlags.None);
                sockets.Add(socket);
            }

            // 10 bytes a second each, far under the 240 bytes/s minimum after its 5 s grace period.
            var started = DateTime.UtcNow;
            while (DateTime.UtcNow - started < TimeSpan.FromSeconds(20) && !sockets.All(RawVisitor.IsClosedByPeer))
            {
                await Task.Delay(TimeSpan.FromSeconds(1));
                foreach (var socket in sockets)
                {
                    try
                    {
                        await socket.SendAsync("0123456789"u8.ToArray(), SocketFlags.None);
                    }
                    catch (SocketException)
                    {
                    }
                }
            }

            output.WriteLine($"all cut after {(DateTime.UtcNow - started).TotalSeconds:0.0} s");
            FiguresFile.Append("hostile visitors", $"200 slow bodies (10 bytes/s): all cut after {(DateTime.UtcNow - started).TotalSeconds:0.0} s");
            Assert.True(sockets.All(RawVisitor.IsClosedByPeer), "some slow bodies were still open after 20 s");
            await watch.AssertResponsiveAndBoundedAsync("slowloris bodies");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task Ten_thousand_streams_from_one_visitor_are_served_within_the_stream_limit_and_others_are_served()
    {
        await using var watch = await AttackWatch.StartAsync(edge, output);
        var port = edge.Edge.VisitorEndPoint.Port.ToString(CultureInfo.InvariantCulture);

        // One HTTP/2 connection asking for 10,000 streams at once; the edge grants 100 at a time.
        var result = await Cli.RunAsync("h2load", ["-n", "10000", "-c", "1", "-m", "10000", $"--connect-to=127.0.0.1:{port}", $"http://{Target}:{port}/"], TimeSpan.FromSeconds(180));
        output.WriteLine(result.Stdout);
        FiguresFile.Append("hostile visitors", "h2load, 1 connection, 10,000 streams asked at once:\n" + string.Join('\n', result.Stdout.Split('\n').Where(l => l.StartsWith("finished", StringComparison.Ordinal) || l.StartsWith("requests:", StringComparison.Ordinal) || l.StartsWith("status codes:", StringComparison.Ordinal))));
        Assert.True(result.ExitCode == 0, Cli.Describe(result));
        Assert.Matches(@"requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed, 0 errored, 0 timeout", result.Stdout);
        Assert.Matches(@"status codes: 10000 2xx", result.Stdout);
        await watch.AssertResponsiveAndBoundedAsync("10,000 streams");
    }

    [Fact]
    public async Task A_visitor_ignoring_the_stream_limit_is_refused_without_harm_to_others()
    {
        await using var watch = await AttackWatch.StartAsync(edge, output);
        var (responses, resets, goAway, closed) = await RawHttp2.FloodAsync(edge.Edge.VisitorEndPoint, Target, streams: 10_000, from: IPAddress.Parse("127.0.0.4"));
        var figures = $"10,000 HEADERS without waiting for the limit: {responses} answered, {resets} refused, GOAWAY {(goAway is { } code ? $"error {code}" : "none")}, connection {(closed ? "ended by the edge" : "left open")}";
        output.WriteLine(figures);
        FiguresFile.Append("hostile visitors", figures);

        // Refused means: streams reset, a GOAWAY, or the connection ended (Kestrel aborts a connection
        // whose output queue the flood overruns, and the reset can discard what it had already sent).
        // An edge that kept the connection open and said nothing for 30 s fails.
        Assert.True(resets > 0 || goAway is not null || closed, $"the edge neither refused streams nor ended the connection ({figures})");
        Assert.True(responses <= 10_000);
        await watch.AssertResponsiveAndBoundedAsync("stream-limit flood");

        // Kestrel logs its output-queue abort once per stream the flood keeps opening (139 Critical lines for
        // this one connection before the throttle): the visitor must not control how much the edge logs.
        var aborts = edge.Edge.Process.CountLines(new Regex(@"Kestrel\.Http2\[60\]"));
        Assert.True(aborts <= 2, $"{aborts} log lines for one flooding connection");
    }

    public static TheoryData<string, string, int[]> MalformedRequests() => new()
    {
        { "a 100 KB header", $"GET / HTTP/1.1\r\nHost: {Target}\r\nX-Big: {new string('a', 100_000)}\r\n\r\n", [431] },
        { "500 headers", $"GET / HTTP/1.1\r\nHost: {Target}\r\n{string.Concat(Enumerable.Range(0, 500).Select(i => $"X-H{i}: {i}\r\n"))}\r\n", [431] },
        { "a header line without a colon", $"GET / HTTP/1.1\r\nHost: {Target}\r\nNoColonHere\r\n\r\n", [400] },
        { "a NUL in a header value", $"GET / HTTP/1.1\r\nHost: {Target}\r\nX-Nul: a\0b\r\n\r\n", [400] },
        { "a bare CR in a header value", $"GET / HTTP/1.1\r\nHost: {Target}\r\nX-Cr: a\rb\r\n\r\n", [400] },
        { "a space before the colon", $"GET / HTTP/1.1\r\nHost: {Target}\r\nX-Space : a\r\n\r\n", [400] },
        { "an obsolete folded header", $"GET / HTTP/1.1\r\nHost: {Target}\r\nX-Fold: a\r\n b\r\n\r\n", [400] },
        { "a garbage request line", "\x01\x02\x03 / HTTP/1.1\r\n\r\n", [400] },
        { "an unknown HTTP version", $"GET / HTTP/7.1\r\nHost: {Target}\r\n\r\n", [400, 505] },
        { "a 20 KB request target", $"GET /{new string('p', 20_000)} HTTP/1.1\r\nHost: {Target}\r\n\r\n", [414, 431] },
        { "two Host headers", $"GET / HTTP/1.1\r\nHost: {Target}\r\nHost: {Other}\r\n\r\n", [400] },
        { "a non-numeric Content-Length", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nContent-Length: abc\r\n\r\n", [400] },
        { "two different Content-Lengths", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", [400] },
        { "a bad chunk size", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", [400] },
        { "an unknown transfer coding", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nTransfer-Encoding: gzip\r\n\r\nabc", [400, 501] },
    };

    [Theory]
    [MemberData(nameof(MalformedRequests))]
    public async Task A_malformed_or_oversized_request_gets_a_4xx_and_the_connection_ends(string what, string request, int[] expected)
    {
        var answer = await RawVisitor.ExchangeAsync(edge.Edge.VisitorEndPoint, request);
        var statuses = RawVisitor.Statuses(answer);
        output.WriteLine($"{what}: {string.Join(", ", statuses)}");
        Assert.True(statuses.Length == 1 && expected.Contains(statuses[0]), $"{what}: expected {string.Join(" or ", expected)}, got: {answer[..Math.Min(answer.Length, 400)]}");

        // And the edge still serves the next visitor.
        using var client = Visitors.Client(edge.Edge.VisitorEndPoint);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"http://{Other}/")).StatusCode);
    }

    public static TheoryData<string, string> SmugglingAttempts() => new()
    {
        // CL.TE: a front that trusts Content-Length would pass "GET /smuggled" on inside the body.
        { "Content-Length and chunked", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {Target}\r\n\r\n" },

        // TE.CL: a front that trusts chunked leaves a request-shaped tail for a back end that counts bytes.
        { "chunked and a long Content-Length", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n1e\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n0\r\n\r\n" },
        { "chunked with an odd spelling", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {Target}\r\n\r\n" },
        { "chunked twice", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {Target}\r\n\r\n" },
        { "a tab before chunked", $"POST /echo HTTP/1.1\r\nHost: {Target}\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {Target}\r\n\r\n" },
    };

    /// <remarks>
    /// The edge forwards over HTTP/2, whose frames leave no room for a second reading of a body, so
    /// the one question is how the edge itself reads the visitor's bytes: it must refuse the ambiguous
    /// message, or read it one way and answer every request it read, so that the visitor sees a
    /// response for each request the origin saw and nothing reaches the origin unanswered.
    /// </remarks>
    [Theory]
    [MemberData(nameof(SmugglingAttempts))]
    public async Task A_smuggling_attempt_is_refused_or_read_one_way_with_an_answer_for_every_request_the_origin_saw(string what, string request)
    {
        var before = edge.SmuggledSeen();
        var answer = await RawVisitor.ExchangeAsync(edge.Edge.VisitorEndPoint, request);
        var statuses = RawVisitor.Statuses(answer);

        // A plain request for /smuggled afterwards: once the origin has logged it, it has logged any
        // smuggled one before it (and the count is shown to work).
        using (var client = Visitors.Client(edge.Edge.VisitorEndPoint))
        {
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"http://{Target}/smuggled")).StatusCode);
        }

        await Wait.UntilAsync(() => edge.SmuggledSeen() > before, TimeSpan.FromSeconds(10), "the origin logs the plain request for /smuggled");
        await Task.Delay(200);
        var smuggledAtOrigin = edge.SmuggledSeen() - before - 1;
        var figures = $"{what}: answers {string.Join(", ", statuses)}; /smuggled requests at the origin: {smuggledAtOrigin}";
        output.WriteLine(figures);
        FiguresFile.Append("request smuggling", figures);
        Assert.NotEmpty(statuses);
        if (statuses[0] == 400)
        {
            Assert.Single(statuses);
            Assert.Equal(0, smuggledAtOrigin);
        }
        else
        {
            // Read as chunked: a tail after the last chunk is the visitor's own next request, and it got
            // its own answer; a request line inside a chunk is body, echoed back, never a request.
            Assert.Equal(200, statuses[0]);
            Assert.True(statuses.Length == 1 + smuggledAtOrigin, $"{statuses.Length} answers for {smuggledAtOrigin} smuggled-looking requests at the origin: {answer}");
        }
    }

    [Fact]
    public async Task A_flood_of_new_connections_leaves_the_edge_responsive_and_its_handles_return()
    {
        var before = ProcessStats.Read(edge.Edge.Process.Id);
        await using var watch = await AttackWatch.StartAsync(edge, output);

        // 5,000 connections, 200 at a time: half close at once, half send a partial request and leave.
        var opened = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 5000), new ParallelOptions { MaxDegreeOfParallelism = 200 }, async (i, _) =>
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(edge.Edge.VisitorEndPoint);
                Interlocked.Increment(ref opened);
                if (i % 2 == 0)
                {
                    await socket.SendAsync(Encoding.ASCII.GetBytes($"GET / HTTP/1.1\r\nHost: {Target}\r\n"), SocketFlags.None);
                }
            }
            catch (SocketException)
            {
                // A full accept queue refusing some is the kernel's bound, not a failure of the edge.
            }
        });

        output.WriteLine($"{opened} of 5000 connections opened");
        Assert.True(opened > 4000, $"only {opened} connections were accepted");
        await watch.AssertResponsiveAndBoundedAsync("connection flood");
        await Wait.UntilAsync(() => ProcessStats.Read(edge.Edge.Process.Id).Handles <= before.Handles + 20, TimeSpan.FromSeconds(30), $"the edge's handles return near {before.Handles}");
    }

    /// <summary>An edge process with two origins (two hostnames), shared by the attacks above.</summary>
    public sealed class EdgeUnderAttack : IAsyncLifetime
    {
        private readonly TestPki _pki = new();
        private ServiceProcess? _target;
        private ServiceProcess? _other;

        public EdgeHost Edge { get; private set; } = null!;

        /// <summary>How many times the target origin logged a request for /smuggled (it logs none, so: its 404s).</summary>
        public int SmuggledSeen() => _target?.CountLines(Smuggled()) ?? 0;

        public async Task InitializeAsync()
        {
            Edge = await EdgeHost.StartAsync(_pki, "abused-edge");
            _target = OriginProcess.Start(_pki, Target, [Edge.TunnelEndPoint], "target", extraEnvironment: new Dictionary<string, string>
            {
                // Request lines in the log, so the test can see what reached the app.
                ["Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
            });
            _other = OriginProcess.Start(_pki, Other, [Edge.TunnelEndPoint], "other");
            await Wait.UntilAsync(() => _target.CountLines(OriginProcess.Registered()) >= 4 && _other.CountLines(OriginProcess.Registered()) >= 4, TimeSpan.FromSeconds(60), "both origins register");
        }

        public async Task DisposeAsync()
        {
            foreach (var process in new[] { _target, _other })
            {
                if (process is not null)
                {
                    await process.DisposeAsync();
                }
            }

            await Edge.DisposeAsync();
            _pki.Dispose();
        }

        private static Regex Smuggled() => new(@"Request starting HTTP/2 \w+ http://[^/]+/smuggled", RegexOptions.Compiled);
    }

    /// <summary>Watches a bystander and the edge's memory while an attack runs.</summary>
    private sealed class AttackWatch : IAsyncDisposable
    {
        private readonly EdgeUnderAttack _edge;
        private readonly ITestOutputHelper _output;
        private readonly Bystander _bystander;
        private readonly ProcessStats _before;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task<long> _peak;

        private AttackWatch(EdgeUnderAttack edge, ITestOutputHelper output)
        {
            _edge = edge;
            _output = output;
            _before = ProcessStats.Read(edge.Edge.Process.Id);
            _bystander = Bystander.Start(edge.Edge.VisitorEndPoint, Other);
            _peak = Task.Run(async () =>
            {
                long peak = 0;
                while (!_stop.IsCancellationRequested)
                {
                    peak = Math.Max(peak, ProcessStats.Read(_edge.Edge.Process.Id).WorkingSet);
                    try
                    {
                        await Task.Delay(200, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }

                return peak;
            });
        }

        public static Task<AttackWatch> StartAsync(EdgeUnderAttack edge, ITestOutputHelper output) => Task.FromResult(new AttackWatch(edge, output));

        public async Task AssertResponsiveAndBoundedAsync(string attack)
        {
            var (requests, p99, slowest) = await _bystander.StopAsync();
            await _stop.CancelAsync();
            var peak = await _peak;
            var figures = $"{attack}: bystander {requests} requests, p99 {p99.TotalMilliseconds:0} ms, slowest {slowest.TotalMilliseconds:0} ms, {_bystander.Failures.Count} failed; " +
                $"edge working set {_before.WorkingSet / 1048576.0:0} MiB before, peak {peak / 1048576.0:0} MiB";
            _output.WriteLine(figures);
            FiguresFile.Append("hostile visitors", figures);
            Assert.False(_edge.Edge.Process.Process.HasExited, "the edge died");
            Assert.Empty(_bystander.Failures);
            Assert.True(requests > 0, figures);
            Assert.True(p99 < ResponsiveP99, figures);
            Assert.True(peak - _before.WorkingSet < MemoryBound, figures);
        }

        public async ValueTask DisposeAsync()
        {
            await _bystander.DisposeAsync();
            await _stop.CancelAsync();
            _stop.Dispose();
        }
    }
}
