using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Tunnel.Edge.Access;
using Tunnel.Edge.Telemetry;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// The connection middlewares that send a visitor connection whole to a passthrough route: on the HTTP
/// port by its first request's host, on the HTTPS port (before TLS) by the ClientHello's server name.
/// A connection for any other name goes on, every byte still unread, to the edge's own HTTP (and TLS)
/// pipeline. While no tunnel has registered a route of the mode, nothing is read at all.
/// </summary>
/// <remarks>
/// A host's Allow and Deny rules (<c>Edge:Hosts</c>) apply to each connection before it is relayed: a
/// refused HTTP connection goes on to the edge's HTTP pipeline, which answers 403 with its page; a refused
/// TLS or TCP connection is closed. Per-request rules (rate limits, header and body limits) cannot apply
/// to bytes the edge does not parse.
/// </remarks>
internal sealed class PassthroughRouter(ConnectionRelay relay, VisitorConnectionLimits limits, HostPolicies policies, int maxRequestHeadBytes)
{
    /// <summary>For the visitor HTTP port, before the h2c sniff.</summary>
    public ConnectionDelegate Http(ConnectionDelegate next) =>
        Route(next, ConnectionMode.Http, buffer => RequestHostReader.Read(buffer, maxRequestHeadBytes));

    /// <summary>For the visitor HTTPS port, before TLS.</summary>
    public ConnectionDelegate Tls(ConnectionDelegate next) =>
        Route(next, ConnectionMode.Tls, ClientHelloReader.Read);

    /// <summary>For an edge port that belongs to one TCP route: every connection goes to it, or is closed.</summary>
    public ConnectionDelegate Tcp(string hostname) => async connection =>
    {
        if (IsDenied(connection, hostname, ConnectionMode.Tcp))
        {
            connection.Abort(new ConnectionAbortedException($"The visitor may not reach {hostname}."));
            return;
        }

        if (!await relay.RelayAsync(connection, hostname, ConnectionMode.Tcp, PortOf(connection)).ConfigureAwait(false))
        {
            connection.Abort(new ConnectionAbortedException($"No tunnel serves the TCP route {hostname} now."));
        }
    };

    private ConnectionDelegate Route(ConnectionDelegate next, ConnectionMode mode, Func<ReadOnlySequence<byte>, SniffResult> read) => async connection =>
    {
        if (!relay.AnyRoute(mode))
        {
            await next(connection).ConfigureAwait(false);
            return;
        }

        if (await SniffAsync(connection, read).ConfigureAwait(false) is not { } result)
        {
            return;
        }

        if (result is { Status: SniffStatus.Found, Host: { } host } && relay.HasRoute(host, mode))
        {
            if (IsDenied(connection, host, mode))
            {
                if (mode == ConnectionMode.Tls)
                {
                    connection.Abort(new ConnectionAbortedException($"The visitor may not reach {host}."));
                    return;
                }
            }
            else if (await relay.RelayAsync(connection, host, mode, PortOf(connection), result.Http2).ConfigureAwait(false))
            {
                return;
            }
        }

        await next(connection).ConfigureAwait(false);
    };

    /// <summary>
    /// Reads until <paramref name="read"/> decides, within the request-headers timeout, and leaves every
    /// byte in the pipe. Returns <c>null</c> when the visitor sent too little in time (the connection is
    /// then closed, counted and logged as a silent one).
    /// </summary>
    private async Task<SniffResult?> SniffAsync(ConnectionContext connection, Func<ReadOnlySequence<byte>, SniffResult> read)
    {
        var input = connection.Transport.Input;
        using var timeout = new CancellationTokenSource(limits.FirstBytesTimeout, limits.Time);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, connection.ConnectionClosed);
        long seen = 0;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(either.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !connection.ConnectionClosed.IsCancellationRequested)
            {
                limits.Refused(VisitorRefusals.FirstBytesTimeout, connection.RemoteEndPoint,
                    $"it sent {(seen == 0 ? "nothing" : $"{seen} bytes, not enough to route it")} within {limits.FirstBytesTimeout.TotalSeconds:0.###} s (Limits:RequestHeadersTimeout)");
                connection.Abort(new ConnectionAbortedException("The visitor sent no request within the request-headers timeout."));
                return null;
            }
            catch (Exception ex) when (ex is OperationCanceledException or ConnectionResetException or IOException)
            {
                return SniffResult.Other;
            }

            seen = result.Buffer.Length;
            var sniffed = read(result.Buffer);
            if (sniffed.Status != SniffStatus.NeedMore || result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(result.Buffer.Start);
                return sniffed;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private bool IsDenied(ConnectionContext connection, string host, ConnectionMode mode)
    {
        var visitor = (connection.RemoteEndPoint as IPEndPoint)?.Address;
        if (visitor is { IsIPv4MappedToIPv6: true })
        {
            visitor = visitor.MapToIPv4();
        }

        if (policies.Resolve(host).Refusal(visitor) is not { } refusal)
        {
            return false;
        }

        relay.Denied(host, mode, refusal);
        return true;
    }

    private static int PortOf(ConnectionContext connection) => connection.LocalEndPoint is IPEndPoint local ? local.Port : 0;
}
