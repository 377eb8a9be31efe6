using System.Net;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Tunnel.Faults;

/// <summary>
/// Origins that attack the edge through their own tunnel: a hand-written HTTP/2 server (the test)
/// over a real TLS tunnel to an edge process. The edge ends each such tunnel as RFC 9113 says, with
/// a log line naming what the origin did; its memory stays bounded meanwhile, and another hostname's
/// origin (HelloOrigin, its own process) is served throughout.
/// </summary>
[Trait("Suite", "Fast")]
public class HostileOriginTests(HostileOriginTests.EdgeWithBystander edge, ITestOutputHelper output) : IClassFixture<HostileOriginTests.EdgeWithBystander>
{
    private const string Hostile = "hostile.test";
    private const string Other = "other.test";

    // What the edge may grow by while one hostile tunnel attacks it. Before the bounds, a flood grew
    // it by its own size: hundreds of MiB within the few seconds a test runs.
    private const long MemoryBound = 48L * 1024 * 1024;
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("PING")]
    [InlineData("SETTINGS")]
    public async Task Ends_a_tunnel_whose_origin_floods_control_frames_without_reading_the_answers(string kind)
    {
        await using var hostile = await HostileOrigin.ConnectAsync(edge.Pki, edge.Edge.TunnelEndPoint, Hostile, receiveBufferSize: 4096);
        await using var watch = Watch();
        var frame = kind == "PING"
            ? HostileOrigin.Encode(HostileOrigin.Ping, 0, 0, new byte[8])
            : HostileOrigin.Encode(HostileOrigin.Settings, 0, 0, []);
        var (written, closed) = await hostile.FloodAsync(HostileOrigin.Repeat(frame, 4096), Generous);
        output.WriteLine($"{kind} flood: {written / 1048576.0:0.0} MiB written before the edge closed the tunnel ({closed})");
        Assert.True(closed, $"the edge kept tunnel {hostile.ConnectionId} open through {written / 1048576.0:0.0} MiB of {kind} frames whose answers were not read");
        await AssertLoggedAsync(hostile, "control_flood");
        await watch.AssertBoundedAsync($"{kind} flood without reading: {written / 1048576.0:0.0} MiB sent");
    }

    [Fact]
    public async Task Ends_a_tunnel_whose_origin_stops_reading_an_upload_while_it_keeps_sending_frames()
    {
        // Windows as large as HTTP/2 allows, so only the edge's own bound holds the upload back.
        await using var hostile = await HostileOrigin.ConnectAsync(edge.Pki, edge.Edge.TunnelEndPoint, Hostile, receiveBufferSize: 4096,
            settings: HostileOrigin.Setting(0x4 /* INITIAL_WINDOW_SIZE */, int.MaxValue));
        await hostile.WriteFrameAsync(HostileOrigin.WindowUpdate, 0, 0, HostileOrigin.UInt32(int.MaxValue - 65535));
        hostile.StartHeartbeat();
        await using var watch = Watch();
        using var visitor = Visitors.Client(edge.Edge.VisitorEndPoint, TimeSpan.FromSeconds(30));
        using var upload = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var posting = visitor.PostAsync($"http://{Hostile}/upload", new StreamContent(new EndlessStream(256L * 1024 * 1024)), upload.Token);

        // Heartbeats keep arriving, so only the stalled write tells the edge the origin is gone:
        // keepalive delay (1 s) plus timeout (2 s), checked a few times a second.
        await AssertLoggedAsync(hostile, "write_stalled");
        await upload.CancelAsync();
        try
        {
            using var response = await posting;
            output.WriteLine($"the visitor's upload ended with {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            output.WriteLine($"the visitor's upload failed: {ex.Message}");
        }

        await watch.AssertBoundedAsync("origin stops reading an upload, heartbeats go on");
    }

    [Fact]
    public async Task Ends_a_tunnel_whose_origin_sends_an_endless_chain_of_empty_CONTINUATION_frames()
    {
        await using var hostile = await HostileOrigin.ConnectAsync(edge.Pki, edge.Edge.TunnelEndPoint, Hostile);
        await using var watch = Watch();
        var goAway = hostile.ReadUntilGoAwayAsync(Generous);
        await hostile.WriteFrameAsync(HostileOrigin.Headers, 0, 1, []);
        var continuation = HostileOrigin.Encode(HostileOrigin.Continuation, 0, 1, []);
        var (written, _) = await hostile.FloodAsync(HostileOrigin.Repeat(continuation, 4096), Generous, stopWhen: goAway);
        Assert.Equal(0xbu /* ENHANCE_YOUR_CALM */, await goAway);
        output.WriteLine($"GOAWAY ENHANCE_YOUR_CALM after {written / 9} empty CONTINUATION frames were sent");
        await AssertLoggedAsync(hostile, "continuation_flood");
        await watch.AssertBoundedAsync("endless CONTINUATION");
    }

    public static TheoryData<string, uint, string> RefusedFrames() => new()
    {
        { "WINDOW_UPDATE on a stream never opened", 0x1, "idle_stream" },
        { "DATA on an even (never opened) stream", 0x1, "idle_stream" },
        { "PUSH_PROMISE", 0x1, "push_promise" },
        { "RST_STREAM flood on a closed stream", 0xb, "frame_flood" },
        { "WINDOW_UPDATE flood of 1 byte on a closed stream", 0xb, "frame_flood" },
    };

    [Theory]
    [MemberData(nameof(RefusedFrames))]
    public async Task Ends_a_tunnel_whose_origin_sends_frames_RFC_9113_refuses_or_floods_ones_that_change_nothing(string attack, uint code, string errorType)
    {
        await using var hostile = await HostileOrigin.ConnectAsync(edge.Pki, edge.Edge.TunnelEndPoint, Hostile);
        hostile.StartHeartbeat();
        await using var watch = Watch();

        // One request answered and finished first, so there is a closed stream to flood.
        using var visitor = Visitors.Client(edge.Edge.VisitorEndPoint, Generous);
        var get = visitor.GetAsync($"http://{Hostile}/", CancellationToken.None);
        var closed = await hostile.ReadRequestAsync(Generous);
        await hostile.WriteFrameAsync(HostileOrigin.Headers, HostileOrigin.EndHeaders | HostileOrigin.EndStream, closed, HostileOrigin.Status200);
        using (var response = await get)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var goAway = hostile.ReadUntilGoAwayAsync(Generous);
        await hostile.WriteAsync(attack switch
        {
            "WINDOW_UPDATE on a stream never opened" => HostileOrigin.Encode(HostileOrigin.WindowUpdate, 0, closed + 100, HostileOrigin.UInt32(1)),
            "DATA on an even (never opened) stream" => HostileOrigin.Encode(HostileOrigin.Data, 0, 2, [1, 2, 3]),
            "PUSH_PROMISE" => HostileOrigin.Encode(HostileOrigin.PushPromise, HostileOrigin.EndHeaders, 1, [0, 0, 0, 2, 0x82, 0x86, 0x84]),
            "RST_STREAM flood on a closed stream" => HostileOrigin.Repeat(HostileOrigin.Encode(HostileOrigin.RstStream, 0, closed, HostileOrigin.UInt32(8)), 5000),
            _ => HostileOrigin.Repeat(HostileOrigin.Encode(HostileOrigin.WindowUpdate, 0, closed, HostileOrigin.UInt32(1)), 5000),
        });
        Assert.Equal(code, await goAway);
        await AssertLoggedAsync(hostile, errorType);
        await watch.AssertBoundedAsync(attack);
    }

    [Fact]
    public async Task Decodes_no_more_of_a_1_MiB_Huffman_header_than_the_header_limit_and_keeps_none_of_it()
    {
        // One tunnel per hostname, so each request lands on its own connection: before the bound, each
        // connection's decoder kept a scratch of 1.6 MB for the life of the tunnel.
        const int Tunnels = 40;
        await using var watch = Watch();
        var block = HugeHuffmanResponse(1_000_000);
        using var visitor = Visitors.Client(edge.Edge.VisitorEndPoint, Generous);
        var hostiles = new List<HostileOrigin>();
        try
        {
            for (var i = 0; i < Tunnels; i++)
            {
                var host = $"h{i}.huff.test";
                var hostile = await HostileOrigin.ConnectAsync(edge.Pki, edge.Edge.TunnelEndPoint, host);
                hostiles.Add(hostile);
                hostile.StartHeartbeat();
                var get = visitor.GetAsync($"http://{host}/", CancellationToken.None);
                var stream = await hostile.ReadRequestAsync(Generous);
                await hostile.WriteAsync(HeaderBlockFrames(stream, block));
                using var response = await get;
                Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
            var retained = ProcessStats.Read(edge.Edge.Process.Id).WorkingSet - watch.Memory.Before;
            var figures = $"{Tunnels} tunnels each answered a request with a {block.Length / 1048576.0:0.0} MiB Huffman header: the edge retains {retained / 1048576.0:0.0} MiB";
            output.WriteLine(figures);
            FiguresFile.Append("hostile origins", figures);
            Assert.True(retained < 40L * 1024 * 1024, figures);
        }
        finally
        {
            foreach (var hostile in hostiles)
            {
                await hostile.DisposeAsync();
            }
        }

        await watch.AssertBoundedAsync("1 MiB Huffman headers on 40 tunnels");
    }

    [FullFact]
    public async Task A_minute_of_hostile_origins_flooding_one_after_another_leaves_the_edge_s_memory_flat()
    {
        var duration = TimeSpan.FromSeconds(60);
        await using var watch = Watch();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var rounds = 0;
        long sent = 0;
        while (clock.Elapsed < duration)
        {
            await using var hostile = await HostileOrigin.ConnectAsync(edge.Pki, edge.Edge.TunnelEndPoint, Hostile, receiveBufferSize: 4096);
            byte[] frame;
            switch (rounds % 3)
            {
                case 0:
                    frame = HostileOrigin.Encode(HostileOrigin.Ping, 0, 0, new byte[8]);
                    break;
                case 1:
                    frame = HostileOrigin.Encode(HostileOrigin.Settings, 0, 0, []);
                    break;
                default:
                    await hostile.WriteFrameAsync(HostileOrigin.Headers, 0, 1, []);
                    frame = HostileOrigin.Encode(HostileOrigin.Continuation, 0, 1, []);
                    break;
            }

            var (written, closed) = await hostile.FloodAsync(HostileOrigin.Repeat(frame, 4096), Generous);
            Assert.True(closed, $"round {rounds}: the edge kept tunnel {hostile.ConnectionId} open through {written / 1048576.0:0.0} MiB");
            sent += written;
            rounds++;
        }

        // What is left once the attacks are over: nothing of theirs may stay.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var left = ProcessStats.Read(edge.Edge.Process.Id).WorkingSet - watch.Memory.Before;
        var figures = $"{rounds} hostile tunnels in {clock.Elapsed.TotalSeconds:0} s (PING, SETTINGS and CONTINUATION floods, none reading), {sent / 1048576.0:0} MiB sent: " +
            $"the edge holds {left / 1048576.0:0.0} MiB more 3 s later";
        output.WriteLine(figures);
        FiguresFile.Append("hostile origins", figures);
        Assert.True(left < 24L * 1024 * 1024, figures);
        await watch.AssertBoundedAsync($"a minute of hostile origins ({rounds} tunnels)");
    }

    /// <summary>:status 200 and one field whose value is a Huffman string of <paramref name="encodedLength"/> bytes ('0', 5 bits each: 1.6 times as many decoded).</summary>
    private static byte[] HugeHuffmanResponse(int encodedLength)
    {
        var block = new List<byte> { 0x88, 0x00, 0x06 };
        block.AddRange("x-huff"u8.ToArray());
        block.Add(0x80 | 0x7F);
        for (var rest = encodedLength - 0x7F; ; rest >>= 7)
        {
            if (rest < 0x80)
            {
                block.Add((byte)rest);
                break;
            }

            block.Add((byte)(0x80 | (rest & 0x7F)));
        }

        block.AddRange(new byte[encodedLength]);
        return [.. block];
    }

    /// <summary>The block as HEADERS (END_STREAM) and CONTINUATIONs of 16 KiB, the last with END_HEADERS.</summary>
    private static byte[] HeaderBlockFrames(int streamId, byte[] block)
    {
        var frames = new List<byte>();
        for (var offset = 0; offset < block.Length; offset += 16384)
        {
            var length = Math.Min(16384, block.Length - offset);
            var last = offset + length == block.Length;
            var flags = (byte)((offset == 0 ? HostileOrigin.EndStream : 0) | (last ? HostileOrigin.EndHeaders : 0));
            frames.AddRange(HostileOrigin.Encode(offset == 0 ? HostileOrigin.Headers : HostileOrigin.Continuation, flags, streamId, block.AsSpan(offset, length)));
        }

        return [.. frames];
    }

    private Task AssertLoggedAsync(HostileOrigin hostile, string errorType) =>
        edge.Edge.Process.WaitForLineAsync(new Regex($@"Ending tunnel {Regex.Escape(hostile.ConnectionId)} of connector \S+ \({errorType}\)"), Generous);

    private Guard Watch() => new(edge, output);

    /// <summary>A bystander visitor of the other hostname and the edge's peak memory, while an attack runs.</summary>
    private sealed class Guard(EdgeWithBystander edge, ITestOutputHelper output) : IAsyncDisposable
    {
        private readonly Bystander _bystander = Bystander.Start(edge.Edge.VisitorEndPoint, Other);

        public PeakMemory Memory { get; } = PeakMemory.Watch(edge.Edge.Process.Id);

        public async Task AssertBoundedAsync(string attack)
        {
            var (requests, p99, _) = await _bystander.StopAsync();
            var growth = await Memory.StopAsync();
            var figures = $"{attack}: the edge's resident memory peaked {growth / 1048576.0:0.0} MiB above {Memory.Before / 1048576.0:0} MiB; " +
                $"bystander {requests} requests, p99 {p99.TotalMilliseconds:0} ms, {_bystander.Failures.Count} failed";
            output.WriteLine(figures);
            FiguresFile.Append("hostile origins", figures);
            Assert.False(edge.Edge.Process.Process.HasExited, "the edge died");
            Assert.Empty(_bystander.Failures);
            Assert.True(requests > 0, figures);
            Assert.True(growth < MemoryBound, figures);
        }

        public async ValueTask DisposeAsync()
        {
            await _bystander.DisposeAsync();
            await Memory.DisposeAsync();
        }
    }

    /// <summary>A request body of <paramref name="length"/> zeros, made as it is read.</summary>
    private sealed class EndlessStream(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - _position);
            Array.Clear(buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>An edge process (keepalive 1 s + 2 s, so a stalled tunnel is found quickly) with a real origin for another hostname.</summary>
    public sealed class EdgeWithBystander : IAsyncLifetime
    {
        private ServiceProcess? _other;

        public TestPki Pki { get; } = new();

        public EdgeHost Edge { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Edge = await EdgeHost.StartAsync(Pki, "hostile-origin-edge", new { KeepAlivePingDelay = "00:00:01", KeepAlivePingTimeout = "00:00:02" });
            _other = OriginProcess.Start(Pki, Other, [Edge.TunnelEndPoint], "other", haConnections: 2);
            await Wait.UntilAsync(() => _other.CountLines(OriginProcess.Registered()) >= 2, TimeSpan.FromSeconds(60), "the bystander origin registers");
        }

        public async Task DisposeAsync()
        {
            if (_other is not null)
            {
                await _other.DisposeAsync();
            }

            await Edge.DisposeAsync();
            Pki.Dispose();
        }
    }
}
