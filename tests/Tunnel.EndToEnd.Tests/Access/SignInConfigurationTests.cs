using Tunnel.Edge;
using Tunnel.Edge.Access;
using Tunnel.Edge.Access.SignIn;
using Tunnel.Edge.Hosting;
using Tunnel.Edge.Visitors.Passthrough;
using Tunnel.Protocol.Registration;

namespace Tunnel.EndToEnd.Tests.Access;

/// <summary>What the edge refuses at start about sign-in, and what sign-in takes away from passthrough.</summary>
public class SignInConfigurationTests
{
    [Theory]
    [InlineData("http")]
    [InlineData("tls")]
    public void A_passthrough_route_with_an_access_section_stops_the_edge_at_start_saying_why(string mode)
    {
        var options = Options();
        options.Connections.TlsPassthrough = true;
        options.Hosts["app.test"] = new EdgeHostOptions { ConnectionModes = [mode], Access = SignInOnly() };

        var error = Assert.Throws<InvalidOperationException>(() => EdgeServer.Create(options));
        Assert.Contains($"Hosts:app.test: it has an Access section and ConnectionModes ({mode}): a passthrough route's requests never reach the edge's sign-in", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tcp_route_for_a_hostname_with_an_access_section_stops_the_edge_at_start_saying_why()
    {
        var options = Options();
        options.Connections.TcpRoutes = [new TcpRouteOptions { Hostname = "db.app.test", Port = 0 }];
        options.Hosts["*.app.test"] = new EdgeHostOptions { Access = SignInOnly() };

        var error = Assert.Throws<InvalidOperationException>(() => EdgeServer.Create(options));
        Assert.Contains("Connections:TcpRoutes: 'db.app.test' (port 0) has sign-in (Hosts:*.app.test:Access), but a TCP route's connections never reach the edge's sign-in.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hostname_with_sign_in_and_no_connection_modes_takes_requests_only()
    {
        var options = Options();
        options.Connections.TlsPassthrough = true;
        options.Hosts["app.test"] = new EdgeHostOptions { Access = SignInOnly() };
        Assert.Empty(EdgeOptionsValidator.Problems(options));

        var modes = new ConnectionModePolicy(options);
        Assert.NotNull(modes.Refuse("app.test", ConnectionMode.Http));
        Assert.NotNull(modes.Refuse("app.test", ConnectionMode.Tls));
        Assert.Null(modes.Refuse("other.test", ConnectionMode.Http));
    }

    [Fact]
    public void An_access_section_that_would_let_anyone_or_nobody_in_stops_the_edge_naming_each_problem()
    {
        var options = Options();
        options.Hosts["a.test"] = new EdgeHostOptions { Access = new EdgeHostAccessOptions { Authority = "http://idp.test", SessionLifetime = TimeSpan.FromDays(30) } };
        options.Hosts["b.test"] = new EdgeHostOptions { Access = new EdgeHostAccessOptions { ServiceTokens = [new ServiceTokenOptions { ClientId = "ci", SecretSha256 = "the-secret" }] } };
        options.Hosts["c.test"] = new EdgeHostOptions { Access = new EdgeHostAccessOptions() };

        var problems = string.Join("\n", EdgeOptionsValidator.Problems(options));
        Assert.Contains("Hosts:a.test:Access:Authority 'http://idp.test' is not an https:// URL", problems, StringComparison.Ordinal);
        Assert.Contains("Hosts:a.test:Access:ClientId is required", problems, StringComparison.Ordinal);
        Assert.Contains("Hosts:a.test:Access: AllowedEmails, AllowedEmailDomains and AllowedGroups are all empty", problems, StringComparison.Ordinal);
        Assert.Contains("Hosts:a.test:Access:SessionLifetime is 30.00:00:00", problems, StringComparison.Ordinal);
        Assert.Contains("Hosts:b.test:Access:ServiceTokens: 'ci' needs SecretSha256", problems, StringComparison.Ordinal);
        Assert.Contains("Hosts:c.test:Access: it has neither an Authority", problems, StringComparison.Ordinal);
    }

    private static EdgeOptions Options() => new() { VisitorHttpPort = 0, TunnelPort = 0, AdminPort = -1, CaCertificatePath = "/nonexistent/ca.pem", ServerCertificatePath = "/nonexistent/edge.pem", ServerKeyPath = "/nonexistent/edge.key" };

    private static EdgeHostAccessOptions SignInOnly() => new()
    {
        Authority = "https://idp.example.com/",
        ClientId = "edge",
        AllowedEmailDomains = ["example.com"],
    };
}
