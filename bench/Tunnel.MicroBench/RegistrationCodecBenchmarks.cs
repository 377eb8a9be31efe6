using BenchmarkDotNet.Attributes;
using Tunnel.Protocol.Registration;

namespace Tunnel.MicroBench;

/// <summary>The registration frames both ends exchange once per tunnel connection.</summary>
[MemoryDiagnoser]
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

    [Benchmark]
    public byte[] EncodeRequest() => RegistrationCodec.EncodeRequest(_request);

    [Benchmark]
    public Task<RegistrationRequest> DecodeRequest() => RegistrationCodec.ReadRequestAsync(new MemoryStream(_requestBytes, writable: false), CancellationToken.None);

    [Benchmark]
    public byte[] EncodeResponse() => RegistrationCodec.EncodeResponse(_response);

    [Benchmark]
    public Task<RegistrationResponse> DecodeResponse() => RegistrationCodec.ReadResponseAsync(new MemoryStream(_responseBytes, writable: false), CancellationToken.None);
}
