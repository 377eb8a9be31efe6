using System.Buffers.Binary;
using System.Text;
using Tunnel.Protocol.Registration;

namespace Tunnel.Protocol.Tests;

/// <summary>Builds registration frames by hand, for documents the codec itself would not write.</summary>
internal static class RegistrationFrames
{
    public const byte Request = 1;
    public const byte Response = 2;

    public static byte[] Frame(byte type, string json) => Frame(type, Encoding.UTF8.GetBytes(json));

    public static byte[] Frame(byte type, byte[] body)
    {
        var frame = Header(type, body.Length);
        Array.Resize(ref frame, RegistrationCodec.HeaderLength + body.Length);
        body.CopyTo(frame, RegistrationCodec.HeaderLength);
        return frame;
    }

    public static byte[] Header(byte type, int announcedLength)
    {
        var header = new byte[RegistrationCodec.HeaderLength];
        "TUN1"u8.CopyTo(header);
        header[4] = type;
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(5), announcedLength);
        return header;
    }

    public static Task<RegistrationRequest> ReadRequest(string json) =>
        RegistrationCodec.ReadRequestAsync(new MemoryStream(Frame(Request, json)), CancellationToken.None);

    public static Task<RegistrationResponse> ReadResponse(string json) =>
        RegistrationCodec.ReadResponseAsync(new MemoryStream(Frame(Response, json)), CancellationToken.None);

    /// <summary>A JSON string literal of <paramref name="length"/> ASCII characters.</summary>
    public static string Text(int length) => "\"" + new string('x', length) + "\"";
}
