using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Tunnel.Edge.Cluster;

/// <summary>
/// Wires the cluster into an edge's host when <see cref="ClusterOptions.StoreEndpoints"/> is set: the
/// etcd route store, the peers, the inter-edge port and its middleware. Otherwise the edge gets the
/// in-memory store and nothing else changes.
/// </summary>
internal static class ClusterServices
{
    /// <summary>Registers the services (the options are checked by <see cref="EdgeOptionsValidator"/>).</summary>
    public static void Add(IServiceCollection services, EdgeOptions options)
    {
        var cluster = options.Cluster;
        if (!cluster.IsEnabled)
        {
            services.AddSingleton<IRouteStore, InMemoryRouteStore>();
            return;
        }

        // Read the files now, so a bad path stops the edge at start rather than at its first etcd call.
        using var tls = EtcdTlsOptions.From(cluster)?.ClientCertificate;

        services.AddSingleton<EtcdRouteStore>();
        services.AddSingleton<IRouteStore>(sp => sp.GetRequiredService<EtcdRouteStore>());
        services.AddSingleton<PeerSet>();
        services.AddSingleton<ClusterMetrics>();
        if (options.Acme.IsEnabled)
        {
            services.AddSingleton<Certificates.Acme.IAcmeShare, EtcdAcmeShare>();
        }

        // Registered before the tunnel listener, so they stop after its drain: peers keep forwarding
        // here while origins move, and the lease is revoked last.
        services.AddHostedService(sp => sp.GetRequiredService<EtcdRouteStore>());
        services.AddHostedService(sp => sp.GetRequiredService<PeerSet>());
    }

    /// <summary>Adds the inter-edge port to Kestrel when clustered.</summary>
    public static ListenOptions? Listen(KestrelServerOptions kestrel, EdgeOptions options) =>
        options.Cluster.IsEnabled ? PeerRequests.Listen(kestrel, options.Cluster, kestrel.ApplicationServices.GetRequiredService<PeerSet>()) : null;

    /// <summary>Adds the middleware that restores forwarded requests, before any visitor middleware.</summary>
    public static void Use(WebApplication app, EdgeOptions options)
    {
        if (options.Cluster.IsEnabled)
        {
            app.Use(PeerRequests.Middleware(app.Services.GetRequiredService<ClusterMetrics>(), app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tunnel.Edge.Cluster")));
        }
    }

    /// <summary>Once the inter-edge port is bound, tells the store the address peers dial; returns it.</summary>
    public static string Announce(IServiceProvider services, EdgeOptions options, IPEndPoint bound)
    {
        var cluster = options.Cluster;
        var address = cluster.AdvertiseAddress is { Length: > 0 } advertised
            ? advertised
            : bound.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{bound.Address}]:{bound.Port}" : $"{bound.Address}:{bound.Port}";
        services.GetRequiredService<EtcdRouteStore>().Announce(address);
        return address;
    }

    /// <summary>Adds every problem of a cluster's options (<c>Edge:Cluster</c>, and the edge's name) to <paramref name="errors"/>.</summary>
    public static void Validate(EdgeOptions options, List<string> errors)
    {
        var cluster = options.Cluster;
        if (options.Name.Length == 0 || options.Name.Contains('/', StringComparison.Ordinal))
        {
            errors.Add($"In a cluster the edge's name must be non-empty and contain no '/' (it is part of etcd keys); '{options.Name}' is not.");
        }

        if (!cluster.KeyPrefix.EndsWith('/'))
        {
            errors.Add($"Edge:Cluster:KeyPrefix must end with '/'; '{cluster.KeyPrefix}' does not.");
        }

        if (cluster.LeaseTtl < TimeSpan.FromSeconds(2))
        {
            errors.Add($"Edge:Cluster:LeaseTtl must be at least 2 s (etcd's minimum is about 1.5 s); {cluster.LeaseTtl.TotalSeconds} s is too short.");
        }

        if (cluster.ProbeInterval <= TimeSpan.Zero)
        {
            errors.Add("Edge:Cluster:ProbeInterval must be positive.");
        }

        ValidatePeerAddresses(cluster, errors);
        ValidateStore(cluster, errors);
    }

    private static void ValidatePeerAddresses(ClusterOptions cluster, List<string> errors)
    {
        if (!IPAddress.TryParse(cluster.PeerAddress, out var listen))
        {
            errors.Add($"Edge:Cluster:PeerAddress '{cluster.PeerAddress}' is not an IP address.");
        }
        else if (string.IsNullOrEmpty(cluster.AdvertiseAddress) && (listen.Equals(IPAddress.Any) || listen.Equals(IPAddress.IPv6Any)))
        {
            errors.Add("The inter-edge port listens on every address, so the other edges cannot be told which one to dial: set Edge:Cluster:AdvertiseAddress (host:port), or PeerAddress to one address.");
        }

        if (cluster.AdvertiseAddress is { Length: > 0 } advertised && !Uri.TryCreate("https://" + advertised + "/", UriKind.Absolute, out _))
        {
            errors.Add($"Edge:Cluster:AdvertiseAddress '{advertised}' is not host:port.");
        }
    }

    private static void ValidateStore(ClusterOptions cluster, List<string> errors)
    {
        var https = false;
        foreach (var endpoint in cluster.StoreEndpoints)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"Edge:Cluster:StoreEndpoints: '{endpoint}' is not an etcd client URL such as http://127.0.0.1:2379.");
                continue;
            }

            https |= uri.Scheme == Uri.UriSchemeHttps;
        }

        if (cluster.StoreKeyPath is { Length: > 0 } && cluster.StoreCertificatePath is not { Length: > 0 })
        {
            errors.Add("Edge:Cluster:StoreKeyPath is set without StoreCertificatePath.");
        }

        if (!https && (cluster.StoreCaPath is { Length: > 0 } || cluster.StoreCertificatePath is { Length: > 0 }))
        {
            errors.Add("Edge:Cluster:StoreCaPath and StoreCertificatePath are for https:// etcd endpoints, and every StoreEndpoints entry is http://: the certificates would never be used.");
        }

        EtcdLogin? login;
        try
        {
            login = EtcdLogin.From(cluster);
        }
        catch (InvalidOperationException ex)
        {
            errors.Add(ex.Message);
            return;
        }

        // etcd's login sends the password as it is, and every later call carries the token it returns.
        if (login is not null && cluster.StoreEndpoints.FirstOrDefault(e => e.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) is { } plain)
        {
            errors.Add($"Edge:Cluster:StoreUsername and StorePassword are set, but the etcd endpoint '{plain}' is plain http://: the password and the token etcd gives for it would cross the network readable by anyone on the path. Use https:// endpoints (etcd's --cert-file and --key-file, and Edge:Cluster:StoreCaPath or --etcd-ca here).");
        }
    }
}
