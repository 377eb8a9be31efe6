using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>The ACME certificates on the status page and in the admin API (<c>GET /api/v1/certificates</c>).</summary>
internal static class AcmeStatus
{
    /// <summary>The status page's section: each certificate's names, issuer, expiry, next attempt and last error.</summary>
    public static void Append(StringBuilder html, AcmeCertificates acme, DateTimeOffset now)
    {
        var certificates = acme.Status();
        html.Append("<h2>ACME certificates</h2>");
        if (certificates.Count == 0)
        {
            html.Append("<p class=\"muted\">None configured or issued yet.</p>");
            return;
        }

        html.Append("<table><tr><th>names</th><th>issuer</th><th>expires (UTC)</th><th>next order (UTC)</th><th>last renewal (UTC)</th><th>last error</th><th>source</th></tr>");
        foreach (var c in certificates)
        {
            html.Append("<tr><td>").Append(string.Join(", ", c.Names.Select(n => "<code>" + E(n) + "</code>"))).Append(c.OnDemand ? " <span class=\"muted\">on demand</span>" : "")
                .Append("</td><td>").Append(c.Issuer is { } issuer ? E(issuer) : "<span class=\"bad\">none yet: the fallback serves</span>")
                .Append("</td><td").Append(c.NotAfter is { } notAfter && notAfter - now < TimeSpan.FromDays(7) ? " class=\"bad\">" : ">").Append(Time(c.NotAfter))
                .Append("</td><td>").Append(Time(c.NextAttempt))
                .Append("</td><td>").Append(Time(c.LastRenewal))
                .Append("</td><td").Append(c.LastError is null ? ">" : " class=\"bad\">").Append(E(c.LastError ?? ""))
                .Append("</td><td>").Append(E(c.Source ?? "")).Append("</td></tr>");
        }

        html.Append("</table>");
    }

    /// <summary>Writes <c>{"certificates":[...]}</c>; 404 when ACME is off.</summary>
    public static async Task WriteAsync(HttpContext context)
    {
        if (context.RequestServices.GetService<AcmeCertificates>() is not { } acme)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            await context.Response.WriteAsJsonAsync(new AcmeErrorResponse("ACME is off: Edge:Acme:DirectoryUrl is not set."), AcmeStatusJsonContext.Default.AcmeErrorResponse).ConfigureAwait(false);
            return;
        }

        await context.Response.WriteAsJsonAsync(new AcmeCertificatesResponse(acme.Status()), AcmeStatusJsonContext.Default.AcmeCertificatesResponse).ConfigureAwait(false);
    }

    private static string Time(DateTimeOffset? time) =>
        time is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "&ndash;";

    private static string E(string text) => WebUtility.HtmlEncode(text);
}

internal sealed record AcmeCertificatesResponse(IReadOnlyList<AcmeCertificateStatus> Certificates);

internal sealed record AcmeErrorResponse(string Error);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AcmeCertificatesResponse))]
[JsonSerializable(typeof(AcmeErrorResponse))]
internal sealed partial class AcmeStatusJsonContext : JsonSerializerContext;
