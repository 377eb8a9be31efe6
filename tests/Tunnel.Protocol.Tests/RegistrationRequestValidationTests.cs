using Tunnel.Protocol.Registration;
using static Tunnel.Protocol.Tests.RegistrationFrames;

namespace Tunnel.Protocol.Tests;

/// <summary>
/// What the edge refuses in a registration request before it looks at authorization, and that every
/// bound accepts exactly its limit and refuses one past it.
/// </summary>
public class RegistrationRequestValidationTests
{
    private const string OneHost = "\"clientVersion\":\"\",\"hostnames\":[\"a.example.com\"]";

    [Theory]
    [InlineData("{" + OneHost + "}")]
    [InlineData("{\"connectorId\":\"\"," + OneHost + "}")]
    [InlineData("{\"connectorId\":null," + OneHost + "}")]
    public async Task A_registration_without_a_connector_id_is_refused_naming_the_field(string json)
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadRequest(json));

        Assert.Equal("The registration field 'connectorId' is missing.", error.Message);
    }

    [Fact]
    public async Task A_registration_with_a_one_character_connector_id_and_an_empty_client_version_is_accepted()
    {
        var request = await ReadRequest("{\"connectorId\":\"c\"," + OneHost + "}");

        Assert.Equal("c", request.ConnectorId);
        Assert.Equal("", request.ClientVersion);
        Assert.Equal(["a.example.com"], request.Hostnames);
    }

    [Fact]
    public async Task A_request_built_without_a_connector_id_is_refused_when_read()
    {
        var frame = RegistrationCodec.EncodeRequest(new RegistrationRequest { Hostnames = ["a.example.com"] });

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadRequestAsync(new MemoryStream(frame), CancellationToken.None));

        Assert.Equal("The registration field 'connectorId' is missing.", error.Message);
    }

    [Fact]
    public async Task A_request_built_without_a_client_version_sends_an_empty_one()
    {
        var read = await Read(["a.example.com"]);

        Assert.Equal("", read.ClientVersion);
        Assert.Equal(TunnelProtocol.Version, read.Version);
    }

    [Fact]
    public async Task A_null_client_version_is_refused_naming_the_field()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => ReadRequest("{\"connectorId\":\"c\",\"clientVersion\":null,\"hostnames\":[\"a.example.com\"]}"));

        Assert.Equal("The registration field 'clientVersion' is missing.", error.Message);
    }

    [Theory]
    [InlineData("connectorId")]
    [InlineData("clientVersion")]
    public async Task A_string_field_of_exactly_the_limit_is_accepted(string field)
    {
        var json = field == "connectorId"
            ? "{\"connectorId\":" + Text(TunnelLimits.MaxFieldLength) + "," + OneHost + "}"
            : "{\"connectorId\":\"c\",\"clientVersion\":" + Text(TunnelLimits.MaxFieldLength) + ",\"hostnames\":[\"a.example.com\"]}";

        var request = await ReadRequest(json);

        var value = field == "connectorId" ? request.ConnectorId : request.ClientVersion;
        Assert.Equal(TunnelLimits.MaxFieldLength, value.Length);
    }

    [Theory]
    [InlineData("connectorId")]
    [InlineData("clientVersion")]
    public async Task A_string_field_one_past_the_limit_is_refused_naming_the_field(string field)
    {
        var json = field == "connectorId"
            ? "{\"connectorId\":" + Text(TunnelLimits.MaxFieldLength + 1) + "," + OneHost + "}"
            : "{\"connectorId\":\"c\",\"clientVersion\":" + Text(TunnelLimits.MaxFieldLength + 1) + ",\"hostnames\":[\"a.example.com\"]}";

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadRequest(json));

        Assert.Equal($"The registration field '{field}' is longer than {TunnelLimits.MaxFieldLength} characters.", error.Message);
    }

    [Theory]
    [InlineData("{\"connectorId\":\"c\"}")]
    [InlineData("{\"connectorId\":\"c\",\"hostnames\":null}")]
    [InlineData("{\"connectorId\":\"c\",\"hostnames\":[]}")]
    public async Task A_registration_naming_no_hostname_is_refused(string json)
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadRequest(json));

        Assert.Equal("The registration names no hostname.", error.Message);
    }

    [Fact]
    public async Task Exactly_the_most_hostnames_a_registration_may_name_are_accepted()
    {
        var request = await Read(Hostnames(TunnelLimits.MaxHostnamesPerRegistration));

        Assert.Equal(TunnelLimits.MaxHostnamesPerRegistration, request.Hostnames.Count);
    }

    [Fact]
    public async Task One_hostname_past_the_limit_is_refused_with_the_count_and_the_limit()
    {
        var count = TunnelLimits.MaxHostnamesPerRegistration + 1;

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => Read(Hostnames(count)));

        Assert.Equal($"The registration names {count} hostnames; the limit is {TunnelLimits.MaxHostnamesPerRegistration}.", error.Message);
    }

    [Fact]
    public async Task A_hostname_of_exactly_the_longest_DNS_length_is_accepted()
    {
        var hostname = new string('a', TunnelLimits.MaxHostnameLength);

        var request = await Read([hostname]);

        Assert.Equal(hostname, Assert.Single(request.Hostnames));
    }

    [Fact]
    public async Task A_hostname_one_past_the_longest_DNS_length_is_refused()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => Read([new string('a', TunnelLimits.MaxHostnameLength + 1)]));

        Assert.Equal("The registration names an empty or over-long hostname.", error.Message);
    }

    [Fact]
    public async Task A_null_hostname_is_refused()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => ReadRequest("{\"connectorId\":\"c\",\"hostnames\":[\"a.example.com\",null]}"));

        Assert.Equal("The registration names an empty or over-long hostname.", error.Message);
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(0, -1)]
    public async Task A_negative_connection_index_or_attempt_count_is_refused(int connectionIndex, int previousAttempts)
    {
        var json = $"{{\"connectorId\":\"c\",{OneHost},\"connectionIndex\":{connectionIndex},\"previousAttempts\":{previousAttempts}}}";

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadRequest(json));

        Assert.Equal("connectionIndex and previousAttempts must not be negative.", error.Message);
    }

    [Fact]
    public async Task A_first_attempt_on_the_first_slot_is_accepted()
    {
        var request = await ReadRequest($"{{\"connectorId\":\"c\",{OneHost},\"connectionIndex\":0,\"previousAttempts\":0}}");

        Assert.Equal(0, request.ConnectionIndex);
        Assert.Equal(0, request.PreviousAttempts);
    }

    [Fact]
    public async Task A_null_document_is_refused()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadRequest("null"));

        Assert.Equal("The registration document is null.", error.Message);
    }

    [Fact]
    public async Task A_document_of_the_wrong_shape_is_refused_with_the_parser_error_inside()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadRequest("{\"hostnames\":\"a.example.com\"}"));

        Assert.StartsWith("The registration document is not valid JSON of the expected shape: ", error.Message, StringComparison.Ordinal);
        Assert.IsType<System.Text.Json.JsonException>(error.InnerException);
    }

    private static string[] Hostnames(int count) => [.. Enumerable.Range(0, count).Select(i => $"h{i}.example.com")];

    private static Task<RegistrationRequest> Read(string[] hostnames) =>
        RegistrationCodec.ReadRequestAsync(
            new MemoryStream(RegistrationCodec.EncodeRequest(new RegistrationRequest { ConnectorId = "c", Hostnames = hostnames })),
            CancellationToken.None);
}
