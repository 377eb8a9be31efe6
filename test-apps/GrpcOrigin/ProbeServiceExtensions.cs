using Microsoft.Extensions.DependencyInjection;

namespace GrpcOrigin;

/// <summary>Registers the probe gRPC service, for this app and for tests that host it in process.</summary>
public static class ProbeServiceExtensions
{
    /// <summary>Adds gRPC with messages up to 8 MiB both ways, and the log of cancelled calls.</summary>
    public static IServiceCollection AddProbeService(this IServiceCollection services)
    {
        services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 8 * 1024 * 1024;
            o.MaxSendMessageSize = 8 * 1024 * 1024;
        });
        services.AddSingleton<CancellationLog>();
        return services;
    }
}
