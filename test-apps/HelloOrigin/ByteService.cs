using System.Buffers;
using System.Buffers.Binary;
using Microsoft.AspNetCore.Connections;

namespace HelloOrigin;

/// <summary>
/// A plain TCP service for the benchmarks' TCP rows (bench/Tunnel.Bench): the client sends one byte,
/// <c>D</c> (download) or <c>U</c> (upload), and an 8-byte big-endian length. For <c>D</c> the service
/// sends that many bytes of the /download pattern and closes; for <c>U</c> it reads that many bytes and
/// answers with the 8-byte count it received.
/// </summary>
public sealed class ByteService : ConnectionHandler
{
    private const int Chunk = 64 * 1024;
    private static readonly byte[] Pattern = CreatePattern();

    /// <inheritdoc />
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        try
        {
            var header = await input.ReadAtLeastAsync(9, connection.ConnectionClosed).ConfigureAwait(false);
            if (header.Buffer.Length < 9)
            {
                return;
            }

            var first = new byte[9];
            header.Buffer.Slice(0, 9).CopyTo(first);
            input.AdvanceTo(header.Buffer.GetPosition(9));
            var length = BinaryPrimitives.ReadInt64BigEndian(first.AsSpan(1));
            if (first[0] == (byte)'D')
            {
                for (long sent = 0; sent < length;)
                {
                    var count = (int)Math.Min(Chunk, length - sent);
                    var flushed = await output.WriteAsync(Pattern.AsMemory((int)(sent % 251), count)).ConfigureAwait(false);
                    sent += count;
                    if (flushed.IsCompleted)
                    {
                        return;
                    }
                }
            }
            else if (first[0] == (byte)'U')
            {
                long received = 0;
                while (received < length)
                {
                    var read = await input.ReadAsync().ConfigureAwait(false);
                    received += read.Buffer.Length;
                    input.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted)
                    {
                        break;
                    }
                }

                var answer = new byte[8];
                BinaryPrimitives.WriteInt64BigEndian(answer, received);
                await output.WriteAsync(answer).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or OperationCanceledException)
        {
        }
        finally
        {
            await output.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static byte[] CreatePattern()
    {
        var table = new byte[Chunk + 251];
        for (var i = 0; i < table.Length; i++)
        {
            table[i] = HelloEndpoints.PatternByte(i);
        }

        return table;
    }
}
