using Microsoft.AspNetCore.Authentication;

namespace Tunnel.Transport.Identity;

/// <summary>Options of the tunnel identity scheme (<c>AddTunnelIdentity</c>).</summary>
public sealed class TunnelIdentityOptions : AuthenticationSchemeOptions
{
    /// <summary>How far the app's clock may be from the edge's when the assertion's <c>nbf</c> and <c>exp</c> are checked.</summary>
    /// <remarks>Defaults to 5 seconds. Assertions live 60 seconds.</remarks>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The claim <c>User.Identity.Name</c> reads.</summary>
    /// <remarks>Defaults to <c>name</c>: the visitor's name at the provider, else their e-mail address; a service token's client id.</remarks>
    public string NameClaimType { get; set; } = "name";

    /// <summary>The claim that <c>[Authorize(Roles = ...)]</c> and <c>IsInRole</c> read.</summary>
    /// <remarks>Defaults to <c>groups</c>: the visitor's groups at the provider, as the edge's policy saw them.</remarks>
    public string RoleClaimType { get; set; } = "groups";
}

/// <summary>Names of the tunnel identity scheme.</summary>
public static class TunnelIdentityDefaults
{
    /// <summary>The scheme's default name.</summary>
    public const string AuthenticationScheme = "Tunnel";
}
