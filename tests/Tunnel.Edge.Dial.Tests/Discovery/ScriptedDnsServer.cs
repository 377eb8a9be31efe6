using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.Edge.Dial.Tests.Discovery;

/// <summary>
/// A UDP "DNS server" on 127.0.0.1 that answers every query with <see cref="Answer"/>, the query's id
/// written into its first two bytes so the client reads on past the header; with no answer set it
/// reads every query and never answers.
/// </summary>
internal sealed class ScriptedDnsServer : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _received;

    public ScriptedDnsServer()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        _loop = Task.Run(AnswerAsync);
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>The bytes sent back for every query; <c>null</c> (the default) for silence.</summary>
    public byte[]? Answer { get; set; }

    /// <summary>How many queries arrived.</summary>
    public int QueriesReceived => Volatile.Read(ref _received);

    public void Dispose()
    {
        _stop.Cancel();
        _socket.Dispose();
        // The loop ends on the cancellation or the closed socket; bounded so a bug cannot hang the run.
        _loop.Wait(TimeSpan.FromSeconds(5));
        _stop.Dispose();
    }

    private async Task AnswerAsync()
    {
        var buffer = new byte[65535];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token);
                Interlocked.Increment(ref _received);
                if (received.ReceivedBytes < 2 || Answer is null)
                {
                    continue;
                }

                var answer = Answer.ToArray();
                if (answer.Length >= 2)
                {
                    BinaryPrimitives.WriteUInt16BigEndian(answer, BinaryPrimitives.ReadUInt16BigEndian(buffer));
                }

                await _socket.SendToAsync(answer, SocketFlags.None, received.RemoteEndPoint, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }
}
