using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using Tunnel.Edge.Tunnels;

namespace Tunnel.Edge.Visitors;

/// <summary>
/// Releases a visitor HTTPS connection's OpenSSL record buffers between records, as the tunnel port
/// does (<see cref="TlsBufferRelease"/>): browsers keep connections open for minutes with nothing on
/// them, and each would otherwise hold about 14 KiB of buffers. A connection middleware after
/// Kestrel's TLS, so it runs once the handshake is done and before HTTP reads or writes anything.
/// </summary>
internal sealed class VisitorTlsBuffers(ILogger<VisitorTlsBuffers> logger)
{
    private long _released;

    /// <summary>Visitor connections whose buffers OpenSSL now releases (tests, diagnostics).</summary>
    public long Released => Interlocked.Read(ref _released);

    /// <summary>The connection middleware; put it after <c>UseHttps</c>.</summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => context =>
    {
        if (context.Features.Get<ISslStreamFeature>()?.SslStream is { } ssl)
        {
            if (TlsBufferRelease.TryApply(ssl, out var problem))
            {
                Interlocked.Increment(ref _released);
            }
            else if (problem is not null)
            {
                EdgeLog.TlsBufferReleaseUnavailable(logger, problem);
            }
        }

        return next(context);
    };
}
