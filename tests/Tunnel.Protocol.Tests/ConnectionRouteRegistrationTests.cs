using System.Buffers.Binary;
using System.Text;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;
using Xunit;

namespace Tunnel.Protocol.Tests;

/// <summary>Connection routes in the registration: carried, bounded with the hostnames, and optional for older origins.</summary>
public class ConnectionRouteRegistrationTests
{
    [Fact]
    public async Task Connection_routes_round_trip_with_their_modes()
    {
        var request = new RegistrationRequest
        {
            ConnectorId = "c",
            Hostnames = ["app.example.com"],
            Connections = [new ConnectionRoute("tls.example.com", ConnectionMode.Tls), new ConnectionRoute("ssh.example.com", ConnectionMode.Tcp), new ConnectionRoute("h.example.com", ConnectionMode.Http)],
        };
        var read = await RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(request)), CancellationToken.None);
        Assert.Equal(request.Connections, read.Connections);
        Assert.Contains("\"mode\":\"Tls\"", Encoding.UTF8.GetString(RegistrationCodec.EncodeRequest(request)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_registration_of_connection_routes_only_is_valid_and_one_of_neither_is_refused()
    {
        var only = new RegistrationRequest { ConnectorId = "c", Connections = [new ConnectionRoute("tls.example.com", ConnectionMode.Tls)] };
        Assert.Single((await RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(only)), CancellationToken.None)).Connections);

        var neither = new RegistrationRequest { ConnectorId = "c" };
        var refused = await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(neither)), CancellationToken.None));
        Assert.Contains("names no hostname", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_document_without_the_field_from_an_older_origin_reads_as_no_connection_routes()
    {
        var read = await RegistrationCodec.ReadRequestAsync(new MemoryStream(Frame("""{"version":1,"connectorId":"c","connectionIndex":0,"hostnames":["a.example.com"],"clientVersion":"old","previousAttempts":0}""")), CancellationToken.None);
        Assert.NotNull(read.Connections);
        Assert.Empty(read.Connections);
    }

    [Fact]
    public async Task Hostnames_and_connection_routes_count_together_against_the_limit()
    {
        var half = TunnelLimits.MaxHostnamesPerRegistration / 2;
        var atLimit = new RegistrationRequest
        {
            ConnectorId = "c",
            Hostnames = [.. Enumerable.Range(0, half).Select(i => $"h{i}.example.com")],
            Connections = [.. Enumerable.Range(0, TunnelLimits.MaxHostnamesPerRegistration - half).Select(i => new ConnectionRoute($"c{i}.example.com", ConnectionMode.Http))],
        };
        await RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(atLimit)), CancellationToken.None);

        var past = atLimit with { Connections = [.. atLimit.Connections, new ConnectionRoute("one-more.example.com", ConnectionMode.Tls)] };
        var refused = await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(past)), CancellationToken.None));
        Assert.Contains($"names {TunnelLimits.MaxHostnamesPerRegistration + 1} hostnames", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_mode_or_an_over_long_route_hostname_is_refused()
    {
        var unknown = """{"version":1,"connectorId":"c","connectionIndex":0,"hostnames":[],"connections":[{"hostname":"a.example.com","mode":"Udp"}],"clientVersion":"x","previousAttempts":0}""";
        await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(Frame(unknown)), CancellationToken.None));

        var numeric = """{"version":1,"connectorId":"c","connectionIndex":0,"hostnames":[],"connections":[{"hostname":"a.example.com","mode":7}],"clientVersion":"x","previousAttempts":0}""";
        await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(Frame(numeric)), CancellationToken.None));

        var tooLong = new RegistrationRequest { ConnectorId = "c", Connections = [new ConnectionRoute(new string('a', TunnelLimits.MaxHostnameLength + 1), ConnectionMode.Http)] };
        await Assert.ThrowsAsync<RegistrationProtocolException>(() => RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(tooLong)), CancellationToken.None));
    }

    [Fact]
    public void Each_mode_has_its_connect_protocol_and_back()
    {
        foreach (var mode in Enum.GetValues<ConnectionMode>())
        {
            Assert.Equal(mode, ConnectionFields.ModeOf(ConnectionFields.ProtocolFor(mode)));
        }

        Assert.Null(ConnectionFields.ModeOf("websocket"));
        Assert.Null(ConnectionFields.ModeOf(null));
    }

    /// <summary>A request frame around a hand-written document: RegistrationCodec's magic and type, then the length.</summary>
    private static byte[] Frame(string json)
    {
        var encoded = RegistrationCodec.EncodeRequest(new RegistrationRequest { ConnectorId = "c", Hostnames = ["x.example.com"] });
        var body = Encoding.UTF8.GetBytes(json);
        var frame = new byte[9 + body.Length];
        encoded.AsSpan(0, 5).CopyTo(frame);
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), body.Length);
        body.CopyTo(frame, 9);
        return frame;
    }
}
