using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using Tunnel.Protocol;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// The inter-edge port and what arrives on it. The port is HTTP/2 over mutual TLS: only edges with an
/// edge certificate from the edge CA get through the handshake, and their connections carry a marker
/// feature. There, a request with the hop header is one another edge forwarded: the visitor's IP,
/// scheme and host that edge put in <c>X-Forwarded-*</c> are restored, so the rest of the pipeline
/// (metrics, tracing, the forwarder) sees the visitor; the access rules, already applied by that edge,
/// are skipped (see <see cref="PeerRequestFeature"/>), and the forwarder serves it from local tunnels
/// only. Without the header it is a round-trip probe. On visitor ports the hop header means
/// nothing and is dropped, so no visitor can pose as an edge.
/// </summary>
internal static class PeerRequests
{
    /// <summary>
    /// The header that marks a request forwarded by another edge; its value is that edge's name. It is
    /// honoured only on the inter-edge port.
    /// </summary>
    public const string HopHeader = "X-Tunnel-Edge-Hop";

    /// <summary>The path of the round-trip probe, answered 204 on the inter-edge port.</summary>
    public const string ProbePath = "/.tunnel-edge/probe";

    // A peer that connects and never finishes its handshake holds a socket; the same bound as visitors'.
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Adds the inter-edge endpoint to Kestrel; returns its listen options.</summary>
    public static ListenOptions Listen(KestrelServerOptions kestrel, ClusterOptions options, PeerSet peers)
    {
        ListenOptions? result = null;
        kestrel.Listen(IPAddress.Parse(options.PeerAddress), options.PeerPort, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                // Per handshake: a renewed certificate is shown from the next connection on.
                ServerCertificateSelector = (_, _) => peers.Certificate,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                ClientCertificateValidation = (certificate, _, _) => PeerCertificates.IsPeerCertificate(certificate, peers.TrustedCas, out _),
                HandshakeTimeout = HandshakeTimeout,
            });
            listen.Use(next => async connection =>
            {
                connection.Features.Set(PeerConnectionFeature.Instance);
                using var tracking = peers.TrackInbound(connection);
                await next(connection).ConfigureAwait(false);
            });
            result = listen;
        });
        return result!;
    }

    /// <summary>The middleware: restores forwarded requests, answers probes, strips the hop header from visitors.</summary>
    public static Func<HttpContext, RequestDelegate, Task> Middleware(ClusterMetrics metrics, ILogger logger) => (context, next) =>
    {
        var headers = context.Request.Headers;
        if (context.Features.Get<PeerConnectionFeature>() is null)
        {
            headers.Remove(HopHeader);
            return next(context);
        }

        var from = headers[HopHeader].ToString();
        if (from.Length == 0)
        {
            if (context.Request.Path.Equals(ProbePath, StringComparison.Ordinal))
            {
                context.Response.StatusCode = StatusCodes.Status204NoContent;
                return Task.CompletedTask;
            }

            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return context.Response.WriteAsync("The inter-edge port takes forwarded requests and probes only.\n", context.RequestAborted);
        }

        var visitor = headers[TunnelHeaderNames.ForwardedFor].ToString();
        var scheme = headers[TunnelHeaderNames.ForwardedProto].ToString();
        var host = headers[TunnelHeaderNames.ForwardedHost].ToString();
        if (!IPAddress.TryParse(visitor, out var visitorIp) || (scheme != "http" && scheme != "https") || host.Length == 0)
        {
            ClusterLog.PeerRequestMalformed(logger, from, visitor, scheme, host);
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return context.Response.WriteAsync("A forwarded request needs the visitor's address, scheme and host.\n", context.RequestAborted);
        }

        context.Connection.RemoteIpAddress = visitorIp;
        context.Connection.RemotePort = 0;
        context.Request.Scheme = scheme;
        context.Request.Host = new HostString(host);
        context.Features.Set(new PeerRequestFeature(from));
        headers.Remove(HopHeader);
        metrics.Received(from);
        return next(context);
    };

    /// <summary>Marks a connection accepted on the inter-edge port (after the mutual TLS handshake).</summary>
    private sealed class PeerConnectionFeature
    {
        public static readonly PeerConnectionFeature Instance = new();
    }
}

/// <summary>
/// Marks a request another edge forwarded here (set only for requests on the mutual-TLS inter-edge
/// port): it is served from local tunnels only, never forwarded again, and skips the access checks
/// (access lists, rate limit, header and body limits) the first edge applied already.
/// </summary>
/// <param name="FromEdge">The name of the edge that forwarded it.</param>
internal sealed record PeerRequestFeature(string FromEdge);
