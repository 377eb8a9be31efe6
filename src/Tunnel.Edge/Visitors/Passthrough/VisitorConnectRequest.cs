using System.Globalization;
using System.Net;
using Tunnel.Edge.Tunnels.Http2;
using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Visitors.Passthrough;

/// <summary>
/// The extended CONNECT (RFC 8441) that opens one tunnel stream for one visitor connection:
/// <c>:protocol</c> names the mode, <c>:authority</c> the hostname routed, and two fields say where the
/// visitor came from (<see cref="ConnectionFields"/>).
/// </summary>
internal sealed class VisitorConnectRequest(string hostname, ConnectionMode mode, EndPoint? visitor, int edgePort, bool http2) : Http2FieldsRequest(HttpMethod.Connect)
{
    private readonly string _protocol = ConnectionFields.ProtocolFor(mode);

    public override string PathAndQuery => "/";

    public override string Authority => hostname;

    public override string? Protocol => _protocol;

    public override void WriteFields(HpackEncoder encoder)
    {
        encoder.WriteLiteral(ConnectionFields.Visitor, visitor is IPEndPoint ip ? Format(ip) : "0.0.0.0:0");
        encoder.WriteLiteral(ConnectionFields.EdgePort, edgePort.ToString(CultureInfo.InvariantCulture));
        if (mode == ConnectionMode.Http)
        {
            encoder.WriteLiteral(ConnectionFields.HttpVersion, http2 ? "2" : "1.1");
        }
    }

    private static string Format(IPEndPoint endPoint)
    {
        var address = endPoint.Address.IsIPv4MappedToIPv6 ? endPoint.Address.MapToIPv4() : endPoint.Address;
        return new IPEndPoint(address, endPoint.Port).ToString();
    }
}
