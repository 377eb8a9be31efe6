using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using GrpcOrigin;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Tunnel.Edge.Identity;
using Tunnel.Edge.Visitors;

namespace Tunnel.EndToEnd.Tests.Infrastructure;

/// <summary>
/// The GrpcOrigin probe service behind a real edge, reachable four ways: directly over h2c and TLS on the
/// app's own listeners, and through the edge's HTTP (h2c) and HTTPS ports.
/// </summary>
public sealed class GrpcSite : IAsyncDisposable
{
    public const string Host = "grpc.test";

    private readonly TestPki _sites;
    private readonly X509Certificate2 _certificate;

    private GrpcSite(TestPki sites, TunnelHarness harness, TunnelHarness.Origin origin, X509Certificate2 certificate, int directH2c, int directTls)
    {
        _sites = sites;
        Harness = harness;
        Origin = origin;
        _certificate = certificate;
        Targets =
        [
            new GrpcTarget("direct h2c", directH2c, Tls: false),
            new GrpcTarget("direct TLS", directTls, Tls: true),
            new GrpcTarget("edge h2c", harness.VisitorPort, Tls: false),
            new GrpcTarget("edge TLS", harness.Edge.VisitorHttpsEndPoint!.Port, Tls: true),
        ];
    }

    public TunnelHarness Harness { get; }

    public TunnelHarness.Origin Origin { get; }

    /// <summary>Direct h2c, direct TLS, edge h2c, edge TLS, in that order.</summary>
    public IReadOnlyList<GrpcTarget> Targets { get; }

    public CancellationLog Cancellations => Origin.App.Services.GetRequiredService<CancellationLog>();

    /// <summary>The CA of the site certificate that the edge's HTTPS port and the app's TLS listener serve.</summary>
    public string SiteCaPath => _sites.CaPath;

    public static async Task<GrpcSite> StartAsync()
    {
        // One site certificate for the edge's HTTPS port and the app's own TLS listener, so a client
        // trusts both the same way.
        var sites = new TestPki();
        var prefix = Path.Combine(sites.Directory, "grpc-site");
        using (var issued = CertificateIssuer.IssueSiteCertificate(sites.Ca, [Host], TimeSpan.FromDays(1)))
        {
            CertificateIssuer.WritePem(issued, prefix + ".pem", prefix + ".key");
        }

        var certificate = X509Certificate2.CreateFromPemFile(prefix + ".pem", prefix + ".key");
        var harness = await TunnelHarness.StartAsync(o =>
        {
            o.VisitorHttpsPort = 0;
            o.Certificates = [new VisitorCertificateFile { CertificatePath = prefix + ".pem", KeyPath = prefix + ".key" }];
        });
        try
        {
            var origin = await harness.StartOriginAsync(
                hostnames: [Host],
                configureBuilder: builder =>
                {
                    builder.Services.AddProbeService();
                    builder.WebHost.ConfigureKestrel(k =>
                    {
                        k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
                        k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate));
                    });
                },
                configureApp: MapEndpoints);
            // The app's own listeners, beside the tunnel endpoint.
            var listeners = origin.App.Urls.Where(u => u.Contains("127.0.0.1", StringComparison.Ordinal)).Select(u => new Uri(u)).ToArray();
            var h2c = listeners.Single(u => u.Scheme == "http").Port;
            var tls = listeners.Single(u => u.Scheme == "https").Port;
            return new GrpcSite(sites, harness, origin, certificate, h2c, tls);
        }
        catch
        {
            await harness.DisposeAsync();
            certificate.Dispose();
            sites.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The probe service, and plain responses without a body: <c>/status/{code}</c> answers with that
    /// status, <c>/empty</c> with 200 and nothing else.
    /// </summary>
    public static void MapEndpoints(WebApplication app)
    {
        app.MapGrpcService<ProbeService>();
        app.MapGet("/status/{code:int}", (int code) => Results.StatusCode(code));
        app.MapGet("/empty", () => Results.Empty);
    }

    /// <summary>A channel to <paramref name="target"/> whose requests name <see cref="Host"/>, trusting the test CA.</summary>
    public GrpcChannel Channel(GrpcTarget target)
    {
        var ca = _sites.Ca;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, target.Port), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, certificate, _, errors) => TrustedByTestCa(ca, certificate, errors) },
        };
        return GrpcChannel.ForAddress($"{(target.Tls ? "https" : "http")}://{Host}:{target.Port}", new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = 8 * 1024 * 1024,
            MaxSendMessageSize = 8 * 1024 * 1024,
            DisposeHttpClient = true,
        });
    }

    public async ValueTask DisposeAsync()
    {
        await Harness.DisposeAsync();
        _certificate.Dispose();
        _sites.Dispose();
    }

    private static bool TrustedByTestCa(X509Certificate2 ca, X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }
}

/// <summary>One way to reach the probe service.</summary>
public sealed record GrpcTarget(string Name, int Port, bool Tls);
