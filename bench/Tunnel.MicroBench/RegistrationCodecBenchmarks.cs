using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Tunnel.Protocol.Registration;

namespace Tunnel.MicroBench;

/// <summary>
/// The registration frames both ends exchange once per tunnel connection, each against its baseline:
/// the bare JSON document of the same message with the same source-generated serializer, which is
/// what the codec wraps. The ratio is the cost of the frame (magic, type, length) and of the checks.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class RegistrationCodecBenchmarks
{
    private readonly RegistrationRequest _request = new()
    {
        ConnectorId = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        ConnectionIndex = 3,
        Hostnames = ["app.example.com", "api.example.com", "*.preview.example.com"],
        ClientVersion = "Tunnel.Transport/0.1.0",
        PreviousAttempts = 1,
    };

    private readonly RegistrationResponse _response = RegistrationResponse.Accept(new RegistrationAccepted
    {
        ConnectionId = "edge-1-000042",
        EdgeName = "edge-1",
        Region = "eu-west",
    });

    private byte[] _requestBytes = [];
    private byte[] _responseBytes = [];

    [GlobalSetup]
    public void Setup()
    {
        _requestBytes = RegistrationCodec.EncodeRequest(_request);
        _responseBytes = RegistrationCodec.EncodeResponse(_response);
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("EncodeRequest")]
    public byte[] JsonOnlyEncodeRequest() => JsonSerializer.SerializeToUtf8Bytes(_request, RegistrationJsonContext.Default.RegistrationRequest);

    [Benchmark]
    [BenchmarkCategory("EncodeRequest")]
    public byte[] EncodeRequest() => RegistrationCodec.EncodeRequest(_request);

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("DecodeRequest")]
    public RegistrationRequest? JsonOnlyDecodeRequest() => JsonSerializer.Deserialize(_requestBytes.AsSpan(RegistrationCodec.HeaderLength), RegistrationJsonContext.Default.RegistrationRequest);

    [Benchmark]
    [BenchmarkCategory("DecodeRequest")]
    public Task<RegistrationRequest> DecodeRequest() => RegistrationCodec.ReadRequestAsync(new MemoryStream(_requestBytes, writable: false), CancellationToken.None);

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("EncodeResponse")]
    public byte[] JsonOnlyEncodeResponse() => JsonSerializer.SerializeToUtf8Bytes(_response, RegistrationJsonContext.Default.RegistrationResponse);

    [Benchmark]
    [BenchmarkCategory("EncodeResponse")]
    public byte[] EncodeResponse() => RegistrationCodec.EncodeResponse(_response);

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("DecodeResponse")]
    public RegistrationResponse? JsonOnlyDecodeResponse() => JsonSerializer.Deserialize(_responseBytes.AsSpan(RegistrationCodec.HeaderLength), RegistrationJsonContext.Default.RegistrationResponse);

    [Benchmark]
    [BenchmarkCategory("DecodeResponse")]
    public Task<RegistrationResponse> DecodeResponse() => RegistrationCodec.ReadResponseAsync(new MemoryStream(_responseBytes, writable: false), CancellationToken.None);
}
