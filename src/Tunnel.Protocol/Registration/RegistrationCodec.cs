using System.Buffers.Binary;
using System.Text.Json;

namespace Tunnel.Protocol.Registration;

/// <summary>
/// Reads and writes the registration frames: a 4-byte magic <c>TUN1</c>, a 1-byte frame type,
/// a 4-byte big-endian body length, then a UTF-8 JSON document of at most
/// <see cref="TunnelLimits.MaxFrameBodyBytes"/> bytes.
/// </summary>
/// <remarks>
/// The reader never reads past the end of the frame, so the HTTP/2 bytes that follow stay in the stream.
/// Every malformed input ends in a <see cref="RegistrationProtocolException"/>.
/// </remarks>
public static class RegistrationCodec
{
    /// <summary>Size of the fixed frame header.</summary>
    public const int HeaderLength = 9;

    private const byte RequestFrameType = 1;
    private const byte ResponseFrameType = 2;
    private static ReadOnlySpan<byte> Magic => "TUN1"u8;

    /// <summary>Writes a registration request frame and flushes the stream.</summary>
    public static Task WriteRequestAsync(Stream stream, RegistrationRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return WriteFrameAsync(stream, RequestFrameType, JsonSerializer.SerializeToUtf8Bytes(request, RegistrationJsonContext.Default.RegistrationRequest), cancellationToken);
    }

    /// <summary>Writes a registration response frame and flushes the stream.</summary>
    public static Task WriteResponseAsync(Stream stream, RegistrationResponse response, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        return WriteFrameAsync(stream, ResponseFrameType, JsonSerializer.SerializeToUtf8Bytes(response, RegistrationJsonContext.Default.RegistrationResponse), cancellationToken);
    }

    /// <summary>Reads one registration request frame and checks its shape (not its authorization).</summary>
    public static async Task<RegistrationRequest> ReadRequestAsync(Stream stream, CancellationToken cancellationToken)
    {
        var body = await ReadFrameAsync(stream, RequestFrameType, cancellationToken).ConfigureAwait(false);
        var request = Deserialize(body, RegistrationJsonContext.Default.RegistrationRequest);
        ValidateRequest(request);
        return request.Connections is null ? request with { Connections = [] } : request;
    }

    /// <summary>
    /// Reads only the header of a registration request frame and returns the body length it announces,
    /// leaving the body unread: for a peer that is refused whatever its registration says, so nothing
    /// of the announced size is ever held for it.
    /// </summary>
    public static async Task<int> ReadRequestHeaderAsync(Stream stream, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new byte[HeaderLength];
        await ReadExactlyAsync(stream, header, "header", cancellationToken).ConfigureAwait(false);
        return ParseHeader(header, RequestFrameType);
    }

    /// <summary>Reads one registration response frame and checks its shape.</summary>
    public static async Task<RegistrationResponse> ReadResponseAsync(Stream stream, CancellationToken cancellationToken)
    {
        var body = await ReadFrameAsync(stream, ResponseFrameType, cancellationToken).ConfigureAwait(false);
        var response = Deserialize(body, RegistrationJsonContext.Default.RegistrationResponse);
        ValidateResponse(response);
        return response;
    }

    /// <summary>Encodes a request frame into a byte array (header and body).</summary>
    public static byte[] EncodeRequest(RegistrationRequest request) =>
        Encode(RequestFrameType, JsonSerializer.SerializeToUtf8Bytes(request, RegistrationJsonContext.Default.RegistrationRequest));

    /// <summary>Encodes a response frame into a byte array (header and body).</summary>
    public static byte[] EncodeResponse(RegistrationResponse response) =>
        Encode(ResponseFrameType, JsonSerializer.SerializeToUtf8Bytes(response, RegistrationJsonContext.Default.RegistrationResponse));

    private static byte[] Encode(byte frameType, byte[] body)
    {
        if (body.Length > TunnelLimits.MaxFrameBodyBytes)
        {
            throw new RegistrationProtocolException($"The registration document is {body.Length} bytes; the limit is {TunnelLimits.MaxFrameBodyBytes}.");
        }

        var frame = new byte[HeaderLength + body.Length];
        Magic.CopyTo(frame);
        frame[4] = frameType;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), body.Length);
        body.CopyTo(frame.AsSpan(HeaderLength));
        return frame;
    }

    private static async Task WriteFrameAsync(Stream stream, byte frameType, byte[] body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var frame = Encode(frameType, body);
        await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<byte[]> ReadFrameAsync(Stream stream, byte expectedType, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new byte[HeaderLength];
        await ReadExactlyAsync(stream, header, "header", cancellationToken).ConfigureAwait(false);
        var length = ParseHeader(header, expectedType);
        return await ReadBodyAsync(stream, length, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads a body of <paramref name="length"/> bytes into a buffer that grows as the bytes arrive
    /// (doubling from <see cref="InitialBodyBufferBytes"/>), so a peer that announces the maximum and
    /// sends little makes the reader hold little: what it holds is at most twice what arrived.
    /// </summary>
    private static async Task<byte[]> ReadBodyAsync(Stream stream, int length, CancellationToken cancellationToken)
    {
        var body = new byte[Math.Min(length, InitialBodyBufferBytes)];
        var filled = 0;
        while (filled < length)
        {
            if (filled == body.Length)
            {
                Array.Resize(ref body, (int)Math.Min(length, body.Length * 2L));
            }

            var read = await stream.ReadAsync(body.AsMemory(filled), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new RegistrationProtocolException("The connection ended in the middle of the registration frame body.");
            }

            filled += read;
        }

        return body;
    }

    // A registration of a few hostnames fits at once; a larger one grows by doubling as it arrives.
    internal const int InitialBodyBufferBytes = 4096;

    /// <summary>
    /// Checks a frame header and returns the body length it announces.
    /// </summary>
    internal static int ParseHeader(ReadOnlySpan<byte> header, byte expectedType)
    {
        if (!header[..4].SequenceEqual(Magic))
        {
            throw new RegistrationProtocolException("The peer did not send a tunnel registration frame (wrong magic); it is not a tunnel/1 peer.");
        }

        if (header[4] != expectedType)
        {
            throw new RegistrationProtocolException($"Unexpected registration frame type {header[4]}; expected {expectedType}.");
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(header[5..]);
        if (length <= 0 || length > TunnelLimits.MaxFrameBodyBytes)
        {
            throw new RegistrationProtocolException($"The registration frame announces {length} bytes; it must be between 1 and {TunnelLimits.MaxFrameBodyBytes}.");
        }

        return length;
    }

    private static async Task ReadExactlyAsync(Stream stream, byte[] buffer, string part, CancellationToken cancellationToken)
    {
        try
        {
            await stream.ReadExactlyAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException ex)
        {
            throw new RegistrationProtocolException($"The connection ended in the middle of the registration frame {part}.", ex);
        }
    }

    private static T Deserialize<T>(byte[] body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(body, typeInfo)
                ?? throw new RegistrationProtocolException("The registration document is null.");
        }
        catch (JsonException ex)
        {
            throw new RegistrationProtocolException($"The registration document is not valid JSON of the expected shape: {ex.Message}", ex);
        }
    }

    private static void ValidateRequest(RegistrationRequest request)
    {
        // An origin older than connection routes leaves the field out.
        var connections = request.Connections ?? [];
        if (request.Hostnames is null || request.Hostnames.Count + connections.Count == 0)
        {
            throw new RegistrationProtocolException("The registration names no hostname.");
        }

        var count = request.Hostnames.Count + connections.Count;
        if (count > TunnelLimits.MaxHostnamesPerRegistration)
        {
            throw new RegistrationProtocolException($"The registration names {count} hostnames; the limit is {TunnelLimits.MaxHostnamesPerRegistration}.");
        }

        foreach (var hostname in request.Hostnames.Concat(connections.Select(c => c?.Hostname)))
        {
            if (hostname is null || hostname.Length > TunnelLimits.MaxHostnameLength)
            {
                throw new RegistrationProtocolException("The registration names an empty or over-long hostname.");
            }
        }

        if (connections.Any(c => !Enum.IsDefined(c.Mode)))
        {
            throw new RegistrationProtocolException("The registration names a connection mode this edge does not know.");
        }

        CheckField(request.ConnectorId, "connectorId", required: true);
        CheckField(request.ClientVersion, "clientVersion", required: false);
        if (request.ConnectionIndex < 0 || request.PreviousAttempts < 0)
        {
            throw new RegistrationProtocolException("connectionIndex and previousAttempts must not be negative.");
        }
    }

    private static void ValidateResponse(RegistrationResponse response)
    {
        if ((response.Accepted is null) == (response.Rejected is null))
        {
            throw new RegistrationProtocolException("A registration response must be either accepted or rejected.");
        }

        if (response.Accepted is { } accepted)
        {
            CheckField(accepted.ConnectionId, "connectionId", required: true);
            CheckField(accepted.EdgeName, "edgeName", required: false);
            CheckField(accepted.Region, "region", required: false);
            if (accepted.IdentityKey is not null)
            {
                CheckField(accepted.IdentityKey, "identityKey", required: true);
            }
        }

        if (response.Rejected is { } rejected)
        {
            CheckField(rejected.Code, "code", required: true);
            CheckField(rejected.Message, "message", required: false);
            if (rejected.RetryAfterSeconds is < 0)
            {
                throw new RegistrationProtocolException("retryAfterSeconds must not be negative.");
            }
        }
    }

    private static void CheckField(string? value, string name, bool required)
    {
        if (value is null || (required && value.Length == 0))
        {
            throw new RegistrationProtocolException($"The registration field '{name}' is missing.");
        }

        if (value.Length > TunnelLimits.MaxFieldLength)
        {
            throw new RegistrationProtocolException($"The registration field '{name}' is longer than {TunnelLimits.MaxFieldLength} characters.");
        }
    }
}
