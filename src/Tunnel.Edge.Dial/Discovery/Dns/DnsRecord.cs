using System.Net;

namespace Tunnel.Edge.Dial.Discovery.Dns;

/// <summary>A resource record as read from a response; <see cref="Ttl"/> in seconds.</summary>
internal abstract record DnsRecord(string Name, uint Ttl);

/// <summary>An SRV record (RFC 2782). A <see cref="Target"/> of <c>"."</c> means the service is not available.</summary>
internal sealed record DnsSrvRecord(string Name, uint Ttl, ushort Priority, ushort Weight, ushort Port, string Target) : DnsRecord(Name, Ttl);

/// <summary>An A or AAAA record.</summary>
internal sealed record DnsAddressRecord(string Name, uint Ttl, IPAddress Address) : DnsRecord(Name, Ttl);

/// <summary>A CNAME record: <see cref="DnsRecord.Name"/> is an alias of <see cref="Target"/>.</summary>
internal sealed record DnsCnameRecord(string Name, uint Ttl, string Target) : DnsRecord(Name, Ttl);

/// <summary>Any other record, or one not of class IN: kept only so the sections' counts add up; its data is skipped.</summary>
internal sealed record DnsOtherRecord(string Name, uint Ttl, ushort Type, ushort Class) : DnsRecord(Name, Ttl);
