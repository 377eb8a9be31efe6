using System.Text.Json.Serialization;

namespace Tunnel.Protocol.Registration;

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RegistrationRequest))]
[JsonSerializable(typeof(RegistrationResponse))]
internal sealed partial class RegistrationJsonContext : JsonSerializerContext;
