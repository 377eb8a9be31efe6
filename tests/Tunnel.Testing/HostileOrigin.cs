using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Tunnel.Protocol;
using Tunnel.Protocol.Registration;

namespace Tunnel.Testing;

/// <summary>
/// An origin written by hand, for what Kestrel never does: it dials the edge's tunnel port over TLS
/// with a real origin certificate, registers with the protocol's own codec, answers the edge's anchor
/// request, and from then on writes whatever HTTP/2 frames a test asks for, as the server, reading
/// only when the test says so.
/// </summary>
public sealed class HostileOrigin : IAsyncDisposable
{
    public const byte Data = 0x0;
    public const byte Headers = 0x1;
    public const byte RstStream = 0x3;
    public const byte Settings = 0x4;
    public const byte PushPromise = 0x5;
    public const byte Ping = 0x6;
    public const byte GoAway = 0x7;
    public const byte WindowUpdate = 0x8;
    public const byte Continuation = 0x9;

    public const byte EndStream = 0x1;
    public const byte EndHeaders = 0x4;

    /// <summary>HPACK for <c>:status: 200</c> (static table index 8).</summary>
    public static readonly byte[] Status200 = [0x88];

    private static readonly TimeSpan SetupTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(500);

    private readonly Socket _socket;
    private readonly SslStream _tls;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly byte[] _header = new byte[9];
    private Task _heartbeat = Task.CompletedTask;

    private HostileOrigin(Socket socket, SslStream tls, string connectionId)
    {
        _socket = socket;
        _tls = tls;
        ConnectionId = connectionId;
    }

    /// <summary>The id the edge gave the tunnel connection (its log lines name it).</summary>
    public string ConnectionId { get; }

    /// <summary>A frame as read from the edge.</summary>
    public sealed record Frame(byte Type, byte Flags, int StreamId, byte[] Payload);

    /// <summary>The edge's SETTINGS as it opened the connection, by parameter id (4: SETTINGS_INITIAL_WINDOW_SIZE).</summary>
    public Dictionary<ushort, uint> EdgeSettings { get; } = [];

    /// <summary>What the edge added to the connection's flow-control window before its anchor request.</summary>
    public long EdgeConnectionWindowIncrement { get; private set; }

    /// <summary>
    /// Dials, registers <paramref name="hostname"/>, sends the server's SETTINGS (<paramref name="settings"/>,
    /// 6 bytes a parameter) and answers the edge's anchor request (stream 1) with 200, leaving it open.
    /// </summary>
    /// <param name="receiveBufferSize">A small socket receive buffer, for an origin that will stop reading: the edge's writes stall sooner.</param>
    public static async Task<HostileOrigin> ConnectAsync(TestPki pki, IPEndPoint tunnel, string hostname, string? certificateName = null, int receiveBufferSize = 0, byte[]? settings = null)
    {
        var socket = new Socket(tunnel.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (receiveBufferSize > 0)
            {
                socket.ReceiveBufferSize = receiveBufferSize;
            }

            using var timeout = new CancellationTokenSource(SetupTimeout);
            await socket.ConnectAsync(tunnel, timeout.Token);
            var (certificatePath, keyPath) = pki.IssueOrigin(certificateName ?? hostname);
            using var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                ClientCertificates = [certificate],
                ApplicationProtocols = [new SslApplicationProtocol(TunnelProtocol.Alpn)],
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }, timeout.Token);
            await RegistrationCodec.WriteRequestAsync(tls, new RegistrationRequest
            {
                ConnectorId = "hostile-" + Guid.NewGuid().ToString("N")[..8],
                Hostnames = [hostname],
                ClientVersion = "hostile-origin/1",
            }, timeout.Token);
            var response = await RegistrationCodec.ReadResponseAsync(tls, timeout.Token);
            if (response.Accepted is not { } accepted)
            {
                throw new InvalidOperationException($"The edge refused the hostile origin's registration: {response.Rejected?.Code} {response.Rejected?.Message}");
            }

            var origin = new HostileOrigin(socket, tls, accepted.ConnectionId);
            await origin.AnswerAnchorAsync(settings ?? [], timeout.Token);
            return origin;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The edge's preface, SETTINGS and anchor HEADERS (stream 1), answered with the server's SETTINGS, an ACK and 200.</summary>
    private async Task AnswerAnchorAsync(byte[] settings, CancellationToken cancellationToken)
    {
        var preface = new byte[24];
        await _tls.ReadExactlyAsync(preface, cancellationToken);
        await WriteFrameAsync(Settings, 0, 0, settings, cancellationToken);
        while (await ReadFrameAsync(cancellationToken) is { } frame)
        {
            if (frame.Type == Settings && frame.Flags == 0)
            {
                for (var i = 0; i + 6 <= frame.Payload.Length; i += 6)
                {
                    EdgeSettings[(ushort)((frame.Payload[i] << 8) | frame.Payload[i + 1])] = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(frame.Payload.AsSpan(i + 2));
                }

                await WriteFrameAsync(Settings, 0x1, 0, [], cancellationToken);
            }
            else if (frame.Type == WindowUpdate && frame.StreamId == 0)
            {
                EdgeConnectionWindowIncrement += System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(frame.Payload) & 0x7FFFFFFF;
            }
            else if (frame.Type == Headers && frame.StreamId == 1)
            {
                await WriteFrameAsync(Headers, EndHeaders, 1, Status200, cancellationToken);
                return;
            }
        }

        throw new IOException("The edge closed the tunnel before its anchor request.");
    }

    /// <summary>Beats on the anchor stream (one DATA byte each half second), so the edge keeps sending requests here.</summary>
    public void StartHeartbeat() => _heartbeat = Task.Run(async () =>
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await WriteFrameAsync(Data, 0, 1, [Tunnel.Protocol.AnchorBeat.Ready], _stop.Token);
                await Task.Delay(HeartbeatInterval, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The edge closed the tunnel, or the test is over.
        }
    });

    /// <summary>One frame's bytes.</summary>
    public static byte[] Encode(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), (uint)streamId & 0x7FFFFFFF);
        payload.CopyTo(frame.AsSpan(9));
        return frame;
    }

    /// <summary><paramref name="count"/> copies of <paramref name="frame"/>, to write in one go.</summary>
    public static byte[] Repeat(byte[] frame, int count)
    {
        var bytes = new byte[frame.Length * count];
        for (var i = 0; i < count; i++)
        {
            frame.CopyTo(bytes, i * frame.Length);
        }

        return bytes;
    }

    /// <summary>A 4-byte big-endian value (window increments, error codes, promised stream ids).</summary>
    public static byte[] UInt32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    /// <summary>A SETTINGS parameter (6 bytes).</summary>
    public static byte[] Setting(ushort id, uint value)
    {
        var bytes = new byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, id);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(2), value);
        return bytes;
    }

    public Task WriteFrameAsync(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload, CancellationToken cancellationToken = default) =>
        WriteAsync(Encode(type, flags, streamId, payload), cancellationToken);

    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            await _tls.WriteAsync(bytes, cancellationToken);
            await _tls.FlushAsync(cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> again and again, without reading, until the edge closes the
    /// connection (a write fails), <paramref name="stopWhen"/> completes or <paramref name="duration"/>
    /// passes. Returns the bytes written and whether the edge closed it.
    /// </summary>
    public async Task<(long Written, bool ClosedByEdge)> FloodAsync(byte[] bytes, TimeSpan duration, Task? stopWhen = null)
    {
        using var deadline = new CancellationTokenSource(duration);
        long written = 0;
        try
        {
            while (!deadline.IsCancellationRequested && stopWhen is not { IsCompleted: true })
            {
                await WriteAsync(bytes, deadline.Token);
                written += bytes.Length;
            }

            return (written, false);
        }
        catch (OperationCanceledException)
        {
            return (written, false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            return (written, true);
        }
    }

    /// <summary>The next frame; <c>null</c> once the edge closed (or reset) the connection.</summary>
    public async Task<Frame?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (await _tls.ReadAtLeastAsync(_header, 9, throwOnEndOfStream: false, cancellationToken) < 9)
            {
                return null;
            }

            var payload = new byte[(_header[0] << 16) | (_header[1] << 8) | _header[2]];
            await _tls.ReadExactlyAsync(payload, cancellationToken);
            return new Frame(_header[3], _header[4], (int)(BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(5)) & 0x7FFFFFFF), payload);
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or SocketException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads until the edge's GOAWAY and returns its error code; <c>null</c> if the edge closed the
    /// connection without one. Fails if the edge still holds the connection open after <paramref name="within"/>.
    /// </summary>
    public async Task<uint?> ReadUntilGoAwayAsync(TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        try
        {
            while (await ReadFrameAsync(timeout.Token) is { } frame)
            {
                if (frame.Type == GoAway)
                {
                    return BinaryPrimitives.ReadUInt32BigEndian(frame.Payload.AsSpan(4));
                }
            }

            return null;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The edge sent no GOAWAY and kept tunnel {ConnectionId} open for {within.TotalSeconds:0} s.");
        }
    }

    /// <summary>Reads until the edge opens a request stream (HEADERS on a stream after the anchor); returns its id.</summary>
    public async Task<int> ReadRequestAsync(TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        while (await ReadFrameAsync(timeout.Token) is { } frame)
        {
            if (frame.Type == Headers && frame.StreamId > 1)
            {
                return frame.StreamId;
            }
        }

        throw new IOException($"The edge closed tunnel {ConnectionId} before sending a request.");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        _tls.Dispose();
        await _heartbeat;
        _stop.Dispose();
        _writeLock.Dispose();
    }
}
