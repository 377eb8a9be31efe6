using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Cluster;

namespace Tunnel.Edge.Dns;

/// <summary>
/// Wires DNS publishing into an edge's host when <c>Edge:Dns:Zones</c> is set: the zones, the writer lock
/// (etcd in a cluster), the publisher and its metric; and renders its records for the status page and
/// the admin API (<c>GET /api/v1/dns</c>).
/// </summary>
internal static class DnsServices
{
    /// <summary>Registers the services (the options are checked by <see cref="Validate"/> first).</summary>
    public static void Add(IServiceCollection services, EdgeOptions options)
    {
        if (!options.Dns.IsEnabled)
        {
            return;
        }

        var zones = DnsZone.FromOptions(options.Dns, []);
        services.AddSingleton<IReadOnlyList<DnsZone>>(zones);
        services.AddSingleton<DnsMetrics>();
        if (options.Cluster.IsEnabled)
        {
            services.AddSingleton<IDnsWriterLock>(sp => new EtcdWriterLock(options, sp.GetRequiredService<EtcdRouteStore>()));
        }
        else
        {
            services.AddSingleton<IDnsWriterLock, SoleWriterLock>();
        }

        services.AddSingleton<DnsPublisher>();
        services.AddHostedService(sp => sp.GetRequiredService<DnsPublisher>());

        // ACME's DNS-01 challenges (a wildcard certificate) write their TXT records through the same signed
        // path; a failed update fails the order with reason dns_<cause>, naming the server.
        services.AddSingleton<Certificates.Acme.IDnsChallengeRecords>(sp => new DnsChallengeRecords(sp.GetRequiredService<DnsPublisher>()));
    }

    /// <summary>Adds every problem of <c>Edge:Dns</c> to <paramref name="errors"/> (reads the secret files, so a bad path stops the edge at start).</summary>
    public static void Validate(EdgeOptions options, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Dns.IsEnabled)
        {
            DnsZone.FromOptions(options.Dns, errors);
        }
    }

    /// <summary>The status page's section: each record, its state and last result. Nothing when DNS publishing is off.</summary>
    public static void AppendStatus(StringBuilder html, DnsPublisher? publisher)
    {
        if (publisher is null)
        {
            return;
        }

        html.Append("<h2>DNS records</h2>");
        var records = publisher.Records();
        if (records.Count == 0)
        {
            html.Append("<p class=\"muted\">No record published yet in ").Append(E(string.Join(", ", publisher.Zones))).Append(".</p>");
            return;
        }

        html.Append("<table><tr><th>name</th><th>type</th><th>value</th><th>zone</th><th>state</th><th>writer</th><th>last update</th><th>last result</th></tr>");
        foreach (var record in records)
        {
            html.Append("<tr><td><code>").Append(E(record.Name)).Append("</code></td><td>").Append(E(record.Type))
                .Append("</td><td><code>").Append(E(record.Value)).Append("</code></td><td>").Append(E(record.Zone))
                .Append("</td><td>").Append(E(record.State)).Append("</td><td>").Append(E(record.Writer))
                .Append("</td><td>").Append(record.LastUpdate is { } at ? at.ToString("u", CultureInfo.InvariantCulture) : "")
                .Append("</td><td").Append(record.LastError is null ? ">" : " class=\"bad\">").Append(E(record.LastResult))
                .Append(record.LastError is { } error ? ": " + E(error) : "").Append("</td></tr>");
        }

        html.Append("</table>");
    }

    /// <summary>Answers <c>GET /api/v1/dns</c>: the records as JSON (404 when DNS publishing is off).</summary>
    public static Task WriteRecordsAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var publisher = context.RequestServices.GetService<DnsPublisher>();
        context.Response.ContentType = "application/json; charset=utf-8";
        if (publisher is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return context.Response.WriteAsync("{\n  \"error\": \"DNS publishing is off: Edge:Dns:Zones is empty.\"\n}", context.RequestAborted);
        }

        var body = new DnsRecordsResponse([.. publisher.Zones], [.. publisher.Records()]);
        return JsonSerializer.SerializeAsync(context.Response.Body, body, DnsJsonContext.Default.DnsRecordsResponse, context.RequestAborted);
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);
}

/// <summary>The admin API's answer to <c>GET /api/v1/dns</c>.</summary>
internal sealed record DnsRecordsResponse(List<string> Zones, List<DnsRecordStatus> Records);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(DnsRecordsResponse))]
internal sealed partial class DnsJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
