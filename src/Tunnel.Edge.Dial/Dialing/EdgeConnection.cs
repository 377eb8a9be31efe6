using System.Net;
using System.Net.Security;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Dial.Dialing;

/// <summary>
/// A registered tunnel connection: the TLS stream on which the edge will now speak HTTP/2 as the client,
/// and what the edge said about itself.
/// </summary>
public sealed class EdgeConnection : IAsyncDisposable
{
    internal EdgeConnection(EdgeAddress edge, SslStream stream, EndPoint? localEndPoint, EndPoint? remoteEndPoint, RegistrationAccepted registration, DialTimings timings)
    {
        Edge = edge;
        Stream = stream;
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = remoteEndPoint;
        Registration = registration;
        Timings = timings;
    }

    /// <summary>The edge address that was dialed.</summary>
    public EdgeAddress Edge { get; }

    /// <summary>The TLS stream; the caller owns it from here on.</summary>
    public SslStream Stream { get; }

    /// <summary>The local socket address.</summary>
    public EndPoint? LocalEndPoint { get; }

    /// <summary>The edge's socket address.</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>The edge's acceptance: connection id, edge name, region.</summary>
    public RegistrationAccepted Registration { get; }

    /// <summary>How long each phase of the dial took.</summary>
    public DialTimings Timings { get; }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => Stream.DisposeAsync();
}

/// <summary>How long each phase of one dial took.</summary>
/// <param name="Tcp">The TCP connect.</param>
/// <param name="Tls">The TLS handshake.</param>
/// <param name="Registration">The registration exchange.</param>
public readonly record struct DialTimings(TimeSpan Tcp, TimeSpan Tls, TimeSpan Registration)
{
    /// <summary>The whole dial.</summary>
    public TimeSpan Total => Tcp + Tls + Registration;
}
