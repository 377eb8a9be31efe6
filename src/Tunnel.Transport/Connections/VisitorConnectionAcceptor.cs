using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using Tunnel.Protocol.Registration;
using Tunnel.Transport.Internal;

namespace Tunnel.Transport.Connections;

/// <summary>
/// Takes the extended CONNECT an edge sends down a tunnel for each visitor connection of a
/// <c>ListenTunnel</c> route, accepts it, and hands the stream to Kestrel on that route's endpoint as an
/// accepted connection whose remote end is the visitor. The CONNECT request lasts as long as the visitor
/// connection: it ends when Kestrel is done with the connection, and a reset from the edge aborts it.
/// </summary>
internal sealed partial class VisitorConnectionAcceptor(ConnectionRoutes routes, TunnelStatus status, ILogger<VisitorConnectionAcceptor> logger)
{
    private static long s_connectionCount;

    /// <summary>The mode of a visitor-connection CONNECT, or <c>null</c> for any other request.</summary>
    public static TunnelMode? ModeOf(HttpContext context) =>
        context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } connect && ConnectionFields.ModeOf(connect.Protocol) is { } mode
            ? ConnectionRoutes.FromWire(mode)
            : null;

    public async Task AcceptAsync(HttpContext context, ITunnelConnectionFeature tunnel, TunnelMode mode)
    {
        var host = context.Request.Host.Host;
        if (routes.Find(host, mode) is not { IsBound: true } endPoint)
        {
            Refused(logger, host, mode, "no endpoint is declared for it with ListenTunnel, or it is not serving");
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var headers = context.Request.Headers;
        if (!IPEndPoint.TryParse(headers[ConnectionFields.Visitor].ToString(), out var visitor)
            || !int.TryParse(headers[ConnectionFields.EdgePort].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var edgePort))
        {
            Refused(logger, host, mode, $"the edge sent no valid {ConnectionFields.Visitor} or {ConnectionFields.EdgePort} field");
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        // The visitor connection may be idle, long and large: the request limits of one HTTP request do not apply.
        context.Features.Get<IHttpMinRequestBodyDataRateFeature>()?.MinDataRate = null;
        context.Features.Get<IHttpMinResponseDataRateFeature>()?.MinDataRate = null;
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = null;
        }

        if (endPoint.H2c is { } h2c && headers[ConnectionFields.HttpVersion] == "2")
        {
            endPoint = h2c;
        }

        var stream = await context.Features.GetRequiredFeature<IHttpExtendedConnectFeature>().AcceptAsync().ConfigureAwait(false);
        var id = $"{tunnel.TunnelConnectionId}-v{Interlocked.Increment(ref s_connectionCount).ToString(CultureInfo.InvariantCulture)}";
        // When Kestrel (or the app's handler) ends its side, the visitor must see the end at once, even
        // while its own side stays open: ending the response sends END_STREAM, and the edge closes the
        // visitor's connection after a grace for what the visitor still sends.
        var response = context.Response;
        var connection = new StreamTransportConnection(stream, id, new DnsEndPoint(host, edgePort), visitor, () => new ValueTask(response.CompleteAsync()));
        connection.Features.Set<ITunnelVisitorConnectionFeature>(new VisitorConnectionFeature(host.ToLowerInvariant(), mode, edgePort, tunnel));
        connection.Start();
        if (!endPoint.TryDeliver(connection))
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        status.VisitorConnectionsChanged(+1);
        try
        {
            await using var abort = context.RequestAborted.Register(() => connection.Abort(new ConnectionAbortedException("The edge ended the visitor connection.")));
            await connection.Disposed.ConfigureAwait(false);
        }
        finally
        {
            status.VisitorConnectionsChanged(-1);
        }
    }

    [LoggerMessage(80, LogLevel.Warning, "A visitor connection for {Host} ({Mode}) from the edge was refused: {Reason}.", EventName = "PassthroughConnectionRefused")]
    private static partial void Refused(ILogger logger, string host, TunnelMode mode, string reason);

    private sealed record VisitorConnectionFeature(string Hostname, TunnelMode Mode, int EdgePort, ITunnelConnectionFeature Tunnel) : ITunnelVisitorConnectionFeature;
}
