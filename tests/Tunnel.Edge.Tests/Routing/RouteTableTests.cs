using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Routing;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Tests.Routing;

/// <summary>
/// The edge's hostname rules for a visitor's host: the exact name first, then the wildcard one label up,
/// never a wildcard for a name claimed exclusively; the least busy usable connection; and the
/// hostnames-changed event the cluster's route store follows. The tunnel connections are real ones
/// over TLS on in-memory pipes (no socket), whose origin side stays silent.
/// </summary>
public sealed class RouteTableTests : IAsyncDisposable
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);
    private static readonly X509Certificate2 Ca = CertificateIssuer.CreateCertificateAuthority("route test CA", TimeSpan.FromDays(1));
    private static readonly X509Certificate2 ServerCertificate = CertificateIssuer.IssueServerCertificate(Ca, ["edge.test"], [], TimeSpan.FromDays(1));

    private readonly List<IAsyncDisposable> _streams = [];
    private readonly RouteTable _routes = new();

    public async ValueTask DisposeAsync()
    {
        foreach (var stream in _streams)
        {
            await stream.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_exact_name_is_served_first_then_the_wildcard_one_label_up_and_no_further()
    {
        var exact = await AddAsync("app.example.com");
        var wildcard = await AddAsync("*.example.com");

        Assert.Same(exact, _routes.Pick("app.example.com"));
        Assert.Same(wildcard, _routes.Pick("other.example.com"));
        Assert.Null(_routes.Pick("deep.other.example.com"));
        Assert.Null(_routes.Pick("example.com"));

        Assert.Equal("app.example.com", _routes.MatchRoute("app.example.com"));
        Assert.Equal("*.example.com", _routes.MatchRoute("other.example.com"));
        Assert.Null(_routes.MatchRoute("deep.other.example.com"));
        Assert.True(_routes.HasRoute("other.example.com"));
        Assert.False(_routes.HasRoute("deep.other.example.com"));
        Assert.False(_routes.HasRoute("example.org"));
    }

    [Fact]
    public async Task A_visitors_host_matches_in_any_case_and_with_a_trailing_dot()
    {
        var exact = await AddAsync("app.example.com");
        var wildcard = await AddAsync("*.example.com");

        Assert.Same(exact, _routes.Pick("APP.Example.COM."));
        Assert.Same(wildcard, _routes.Pick("Other.Example.com."));
        Assert.Equal("app.example.com", _routes.MatchRoute("App.example.com."));
        Assert.Equal("*.example.com", _routes.MatchRoute("OTHER.example.com"));
        Assert.True(_routes.HasRoute("APP.EXAMPLE.COM."));
        Assert.True(_routes.HasRoute("x.EXAMPLE.com"));
    }

    [Fact]
    public async Task A_name_claimed_exclusively_is_never_served_through_a_wildcard()
    {
        var wildcard = await AddAsync("*.example.com");
        _routes.UseExclusiveNames(["app.example.com"]);

        Assert.Null(_routes.Pick("app.example.com"));
        Assert.False(_routes.HasRoute("app.example.com"));
        Assert.Null(_routes.MatchRoute("app.example.com"));
        Assert.Same(wildcard, _routes.Pick("other.example.com"));

        // The claimant's own exact route serves it.
        var claimant = await AddAsync("app.example.com");
        Assert.Same(claimant, _routes.Pick("app.example.com"));

        _routes.UseExclusiveNames([]);
        Assert.Same(wildcard, _routes.Pick("app.example.com", [claimant]));
    }

    [Fact]
    public async Task The_usable_connection_with_the_fewest_requests_in_flight_is_picked()
    {
        var busy = await AddAsync("app.example.com");
        var idle = await AddAsync("app.example.com");
        var busier = await AddAsync("app.example.com");
        busy.RequestStarted();
        busier.RequestStarted();
        busier.RequestStarted();

        Assert.Same(idle, _routes.Pick("app.example.com"));
        Assert.Same(busy, _routes.Pick("app.example.com", [idle]));
        Assert.Same(busier, _routes.Pick("app.example.com", [idle, busy]));

        idle.MarkDraining();
        Assert.Same(busy, _routes.Pick("app.example.com"));

        busy.RequestFinished();
        busier.RequestFinished();
        busier.RequestFinished();
        Assert.Same(busy, _routes.Pick("app.example.com"));
    }

    [Fact]
    public async Task Connection_route_tables_hold_each_mode_apart_and_break_ties_in_turn_while_request_routes_keep_the_first()
    {
        var tables = new ConnectionRouteTables();
        var tls = new Tunnel.Protocol.Registration.ConnectionRoute("app.example.com", Tunnel.Protocol.Registration.ConnectionMode.Tls);
        var first = await ConnectAsync(["app.example.com"], [tls]);
        var second = await ConnectAsync(["app.example.com"], [tls]);
        foreach (var connection in (TunnelConnection[])[first, second])
        {
            _routes.Add(connection);
            tables.Add(connection);
        }

        Assert.False(tables.Http.HasRoutes);
        Assert.True(tables.Tls.HasRoutes);
        Assert.Null(tables.Http.Pick("app.example.com"));

        // Equal load: connections alternate; requests always go to the first.
        var picked = Enumerable.Range(0, 6).Select(_ => tables.Tls.Pick("app.example.com")).ToArray();
        Assert.Equal(3, picked.Count(c => ReferenceEquals(c, first)));
        Assert.Equal(3, picked.Count(c => ReferenceEquals(c, second)));
        Assert.All(Enumerable.Range(0, 4), _ => Assert.Same(first, _routes.Pick("app.example.com")));

        // Load still decides first.
        first.RequestStarted();
        Assert.All(Enumerable.Range(0, 4), _ => Assert.Same(second, tables.Tls.Pick("app.example.com")));

        tables.Remove(first);
        tables.Remove(second);
        Assert.False(tables.Tls.HasRoutes);
    }

    [Fact]
    public async Task When_every_exact_connection_is_excluded_or_unusable_the_wildcard_serves()
    {
        var exact = await AddAsync("app.example.com");
        var wildcard = await AddAsync("*.example.com");

        Assert.Same(wildcard, _routes.Pick("app.example.com", [exact]));
        exact.MarkDraining();
        Assert.Same(wildcard, _routes.Pick("app.example.com"));

        wildcard.MarkDraining();
        Assert.Null(_routes.Pick("app.example.com"));
        Assert.True(_routes.HasRoute("app.example.com"));
    }

    [Fact]
    public async Task Hostnames_change_when_a_name_gains_its_first_connection_or_loses_its_last()
    {
        var changes = 0;
        _routes.HostnamesChanged += () => changes++;

        var first = await AddAsync("app.example.com", "api.example.com");
        Assert.Equal(1, changes);
        var second = await AddAsync("app.example.com");
        Assert.Equal(1, changes);
        Assert.Equal(2, _routes.ConnectionCount);
        Assert.Equal(["api.example.com", "app.example.com"], _routes.Hostnames().Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(new[] { first, second }, _routes.ConnectionsFor("app.example.com").ToArray());
        Assert.Equal(2, _routes.Connections().Count);
        Assert.Equal(2, _routes.Snapshot().Count);

        Assert.True(_routes.Remove(second));
        Assert.Equal(1, changes);
        Assert.Equal(1, _routes.ConnectionCount);
        Assert.False(_routes.Remove(second));
        Assert.Equal(1, _routes.ConnectionCount);

        Assert.True(_routes.Remove(first));
        Assert.Equal(2, changes);
        Assert.Equal(0, _routes.ConnectionCount);
        Assert.Empty(_routes.Hostnames());
        Assert.True(_routes.ConnectionsFor("app.example.com").IsEmpty);
        Assert.Null(_routes.Pick("app.example.com"));
    }

    private async Task<TunnelConnection> AddAsync(params string[] hostnames)
    {
        var connection = await ConnectAsync(hostnames);
        _routes.Add(connection);
        return connection;
    }

    /// <summary>A tunnel connection whose TLS runs over in-memory pipes to an origin end that never speaks.</summary>
    private async Task<TunnelConnection> ConnectAsync(string[] hostnames, IReadOnlyList<Tunnel.Protocol.Registration.ConnectionRoute>? connectionRoutes = null)
    {
        var toEdge = new Pipe();
        var toOrigin = new Pipe();
        var edgeSide = new SslStream(new PipeStream(toEdge.Reader, toOrigin.Writer));
        var originSide = new SslStream(new PipeStream(toOrigin.Reader, toEdge.Writer), false, (_, _, _, _) => true);
        _streams.Add(originSide);
        _streams.Add(edgeSide);
        await Task.WhenAll(
            edgeSide.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = ServerCertificate }),
            originSide.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "edge.test" })).WaitAsync(Generous);

        var options = new EdgeOptions { KeepAlivePingDelay = Timeout.InfiniteTimeSpan };
        var connection = new TunnelConnection($"c{_streams.Count}", "connector", 0, hostnames, null, edgeSide, options, TimeProvider.System, "credential", connectionRoutes);
        Assert.True(connection.IsUsable);
        return connection;
    }

    /// <summary>One end of a duplex in-memory link: reads one pipe, writes the other.</summary>
    private sealed class PipeStream(PipeReader input, PipeWriter output) : Stream
    {
        private readonly Stream _input = input.AsStream();
        private readonly Stream _output = output.AsStream();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _input.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _input.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _input.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => _output.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _output.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _output.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Flush() => _output.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => _output.FlushAsync(cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                input.Complete();
                output.Complete();
            }

            base.Dispose(disposing);
        }
    }
}
