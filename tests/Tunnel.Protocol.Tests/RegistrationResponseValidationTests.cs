using Tunnel.Protocol.Registration;
using static Tunnel.Protocol.Tests.RegistrationFrames;

namespace Tunnel.Protocol.Tests;

/// <summary>What the origin refuses in the edge's reply, and that each field's bound is exact.</summary>
public class RegistrationResponseValidationTests
{
    [Fact]
    public async Task An_acceptance_round_trips_with_its_connection_edge_and_region()
    {
        var accepted = new RegistrationAccepted { ConnectionId = "conn-1", EdgeName = "edge-a", Region = "fra" };

        var read = await RegistrationCodec.ReadResponseAsync(
            new MemoryStream(RegistrationCodec.EncodeResponse(RegistrationResponse.Accept(accepted))), CancellationToken.None);

        Assert.Null(read.Rejected);
        Assert.Equal(accepted, read.Accepted);
    }

    [Fact]
    public async Task An_acceptance_with_an_empty_edge_name_and_region_is_accepted()
    {
        var read = await ReadResponse("{\"accepted\":{\"connectionId\":\"c\",\"edgeName\":\"\",\"region\":\"\"}}");

        Assert.Equal(new RegistrationAccepted { ConnectionId = "c" }, read.Accepted);
    }

    [Theory]
    [InlineData("{\"accepted\":{\"edgeName\":\"e\",\"region\":\"\"}}")]
    [InlineData("{\"accepted\":{\"connectionId\":\"\",\"edgeName\":\"e\",\"region\":\"\"}}")]
    [InlineData("{\"accepted\":{\"connectionId\":null,\"edgeName\":\"e\",\"region\":\"\"}}")]
    public async Task An_acceptance_without_a_connection_id_is_refused_naming_the_field(string json)
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadResponse(json));

        Assert.Equal("The registration field 'connectionId' is missing.", error.Message);
    }

    [Theory]
    [InlineData("edgeName", "region")]
    [InlineData("region", "edgeName")]
    public async Task A_null_optional_acceptance_field_is_refused_naming_it(string field, string other)
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => ReadResponse($"{{\"accepted\":{{\"connectionId\":\"c\",\"{other}\":\"\",\"{field}\":null}}}}"));

        Assert.Equal($"The registration field '{field}' is missing.", error.Message);
    }

    [Fact]
    public async Task A_rejection_with_an_empty_message_and_no_retry_delay_is_accepted()
    {
        var read = await ReadResponse("{\"rejected\":{\"code\":\"edge_draining\",\"message\":\"\",\"retryable\":true}}");

        Assert.Null(read.Accepted);
        Assert.Equal(new RegistrationRejected { Code = RejectionCodes.EdgeDraining, Retryable = true }, read.Rejected);
    }

    [Theory]
    [InlineData("{\"rejected\":{\"message\":\"no\"}}")]
    [InlineData("{\"rejected\":{\"code\":\"\",\"message\":\"\"}}")]
    [InlineData("{\"rejected\":{\"code\":null,\"message\":\"\"}}")]
    public async Task A_rejection_without_a_code_is_refused_naming_the_field(string json)
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadResponse(json));

        Assert.Equal("The registration field 'code' is missing.", error.Message);
    }

    [Fact]
    public async Task A_null_rejection_message_is_refused_naming_the_field()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadResponse("{\"rejected\":{\"code\":\"x\",\"message\":null}}"));

        Assert.Equal("The registration field 'message' is missing.", error.Message);
    }

    [Fact]
    public async Task Replies_built_without_their_required_field_are_refused_when_read()
    {
        var accepted = RegistrationCodec.EncodeResponse(RegistrationResponse.Accept(new RegistrationAccepted { EdgeName = "e" }));
        var rejected = RegistrationCodec.EncodeResponse(RegistrationResponse.Reject(new RegistrationRejected { Message = "m" }));

        var noConnection = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadResponseAsync(new MemoryStream(accepted), CancellationToken.None));
        var noCode = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => RegistrationCodec.ReadResponseAsync(new MemoryStream(rejected), CancellationToken.None));

        Assert.Equal("The registration field 'connectionId' is missing.", noConnection.Message);
        Assert.Equal("The registration field 'code' is missing.", noCode.Message);
    }

    [Fact]
    public async Task A_negative_retry_delay_is_refused()
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(
            () => ReadResponse("{\"rejected\":{\"code\":\"overloaded\",\"message\":\"\",\"retryAfterSeconds\":-1}}"));

        Assert.Equal("retryAfterSeconds must not be negative.", error.Message);
    }

    [Fact]
    public async Task A_retry_delay_of_zero_is_accepted()
    {
        var read = await ReadResponse("{\"rejected\":{\"code\":\"overloaded\",\"message\":\"\",\"retryAfterSeconds\":0}}");

        Assert.Equal(0, read.Rejected!.RetryAfterSeconds);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"accepted\":null,\"rejected\":null}")]
    public async Task A_response_that_neither_accepts_nor_rejects_is_refused(string json)
    {
        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadResponse(json));

        Assert.Equal("A registration response must be either accepted or rejected.", error.Message);
    }

    [Theory]
    [InlineData("accepted", "connectionId")]
    [InlineData("accepted", "edgeName")]
    [InlineData("accepted", "region")]
    [InlineData("rejected", "code")]
    [InlineData("rejected", "message")]
    public async Task A_response_field_of_exactly_the_limit_is_accepted_and_one_past_it_refused(string kind, string field)
    {
        var atLimit = await ReadResponse(Document(kind, field, TunnelLimits.MaxFieldLength));
        Assert.Equal(TunnelLimits.MaxFieldLength, FieldOf(atLimit, field).Length);

        var error = await Assert.ThrowsAsync<RegistrationProtocolException>(() => ReadResponse(Document(kind, field, TunnelLimits.MaxFieldLength + 1)));
        Assert.Equal($"The registration field '{field}' is longer than {TunnelLimits.MaxFieldLength} characters.", error.Message);
    }

    /// <summary>A response of the given kind whose <paramref name="field"/> has the given length and whose other fields are short.</summary>
    private static string Document(string kind, string field, int length)
    {
        string[] names = kind == "accepted" ? ["connectionId", "edgeName", "region"] : ["code", "message"];
        var fields = names.Select(name => $"\"{name}\":" + (name == field ? Text(length) : "\"r\""));
        return $"{{\"{kind}\":{{{string.Join(',', fields)}}}}}";
    }

    private static string FieldOf(RegistrationResponse response, string field) => field switch
    {
        "connectionId" => response.Accepted!.ConnectionId,
        "edgeName" => response.Accepted!.EdgeName,
        "region" => response.Accepted!.Region,
        "code" => response.Rejected!.Code,
        _ => response.Rejected!.Message,
    };
}
