using System.Diagnostics;

namespace Tunnel.Transport.Internal;

/// <summary>The plugin's ActivitySource, <c>Tunnel.Transport</c>: one span per dial and registration.</summary>
internal static class TunnelActivitySource
{
    public const string Name = "Tunnel.Transport";

    public static readonly ActivitySource Source = new(Name, typeof(TunnelActivitySource).Assembly.GetName().Version?.ToString());
}
