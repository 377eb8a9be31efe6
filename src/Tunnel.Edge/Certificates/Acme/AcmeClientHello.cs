using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Tunnel.Edge.Visitors.Passthrough;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The server name and ALPN protocols of a ClientHello, peeked (every byte left in the pipe) so the HTTPS
/// port can tell an ACME TLS-ALPN-01 validator from a visitor before the handshake.
/// </summary>
/// <remarks>
/// Only a ClientHello in one TLS record is read: validators send a small one. A ClientHello split over
/// records is treated as a visitor's (the connection goes on to the normal handshake), which is never wrong
/// for a visitor and at worst fails one validation attempt.
/// </remarks>
internal sealed record AcmeClientHello(string? ServerName, IReadOnlyList<string> Protocols)
{
    private const int RecordHeaderLength = 5;
    private const int MaxRecordLength = 16 * 1024;
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Peeks the ClientHello; <c>null</c> when the first bytes are not one (in one record) or do not come in time.</summary>
    public static async Task<AcmeClientHello?> ReadAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        using var timeout = new CancellationTokenSource(ReadTimeout);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, connection.ConnectionClosed);
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(either.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException)
            {
                return null;
            }

            var status = TryParse(result.Buffer, out var hello);
            if (status != false || result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(result.Buffer.Start);
                return status == true ? hello : null;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <returns><c>true</c> when parsed, <c>null</c> when not a single-record ClientHello, <c>false</c> when more bytes are needed.</returns>
    internal static bool? TryParse(ReadOnlySequence<byte> buffer, out AcmeClientHello? hello)
    {
        hello = null;
        if (buffer.Length < RecordHeaderLength)
        {
            return buffer.IsEmpty || buffer.FirstSpan[0] == 22 ? false : null;
        }

        Span<byte> header = stackalloc byte[RecordHeaderLength];
        buffer.Slice(0, RecordHeaderLength).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt16BigEndian(header[3..]);
        if (header[0] != 22 || header[1] != 3 || length is 0 or > MaxRecordLength)
        {
            return null;
        }

        if (buffer.Length < RecordHeaderLength + length)
        {
            return false;
        }

        var record = buffer.Slice(RecordHeaderLength, length).ToArray();
        hello = Parse(record);
        return hello is null ? null : true;
    }

    private static AcmeClientHello? Parse(ReadOnlySpan<byte> handshake)
    {
        var r = new ClientHelloReader.SpanReader(handshake);
        if (!r.TryByte(out var type) || type != 1 || !r.Skip(3) || !r.Skip(2 + 32) || !r.TryVector(1, out _) || !r.TryVector(2, out _) || !r.TryVector(1, out _))
        {
            return null;
        }

        if (!r.TryVector(2, out var extensions))
        {
            return new AcmeClientHello(null, []);
        }

        string? serverName = null;
        var protocols = new List<string>();
        var e = new ClientHelloReader.SpanReader(extensions);
        while (e.TryUInt16(out var extensionType) && e.TryVector(2, out var data))
        {
            var d = new ClientHelloReader.SpanReader(data);
            if (extensionType == 0 && d.TryVector(2, out var names))
            {
                // server_name: name_type (0 = host_name), then a 16-bit length-prefixed name.
                var n = new ClientHelloReader.SpanReader(names);
                if (n.TryByte(out var nameType) && nameType == 0 && n.TryVector(2, out var name))
                {
                    serverName = Encoding.ASCII.GetString(name).TrimEnd('.').ToLowerInvariant();
                }
            }
            else if (extensionType == 16 && d.TryVector(2, out var list))
            {
                var p = new ClientHelloReader.SpanReader(list);
                while (p.TryVector(1, out var protocol))
                {
                    protocols.Add(Encoding.ASCII.GetString(protocol));
                }
            }
        }

        return new AcmeClientHello(serverName, protocols);
    }
}
