using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Redial;
using Tunnel.Protocol.Registration;

namespace Tunnel.Transport.Internal;

/// <summary>
/// <see cref="TunnelOptions"/> checked and turned into the parts that dial: the settings that stay
/// for the listener's life, and the <see cref="TunnelDialState"/> new dials use now, which
/// <see cref="Reload"/> replaces when the identity's files change. The checks are
/// <see cref="TunnelOptionsValidator"/>'s and <see cref="TunnelIdentityLoader"/>'s; a configuration
/// mistake stops the app at start with one message that names every problem.
/// </summary>
internal sealed class TunnelSettings
{
    private readonly TunnelOptions _options;
    private readonly IReadOnlyList<ConnectionRoute> _connections;
    private readonly DnsResolverOptions _dnsOptions;
    private readonly TimeProvider _time;
    private readonly Lock _reloadLock = new();
    private TunnelDialState _current;

    private TunnelSettings(TunnelOptions options, DnsResolverOptions dnsOptions, TunnelDialState initial, TimeProvider time, IReadOnlyList<ConnectionRoute> connections)
    {
        _connections = connections;
        _options = options;
        _dnsOptions = dnsOptions;
        _time = time;
        _current = initial;
        HaConnections = options.HaConnections;
        Redial = options.Redial;
        CredentialCheckInterval = options.CredentialCheckInterval;
        CertificateExpiryWarning = options.CertificateExpiryWarning;
        RebalanceInterval = options.RebalanceInterval == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : options.RebalanceInterval;
        WatchedFiles = new[] { options.CredentialPath, options.Certificate is null ? options.CertificatePath : null, options.Certificate is null ? options.CertificateKeyPath : null, options.EdgeCaPath }
            .Where(path => !string.IsNullOrEmpty(path))
            .Select(path => Path.GetFullPath(path!))
            .Distinct(StringComparer.Ordinal)
            .ToArray();
    }

    public int HaConnections { get; }

    public RedialBackoffOptions Redial { get; }

    /// <summary>What new dials use now; replaced as a whole when a renewed credential is loaded.</summary>
    public TunnelDialState Current => Volatile.Read(ref _current);

    /// <summary>The files the identity is read from: watched for renewal.</summary>
    public IReadOnlyList<string> WatchedFiles { get; }

    public TimeSpan CredentialCheckInterval { get; }

    public TimeSpan CertificateExpiryWarning { get; }

    /// <summary>How often the spread over the edges is checked; zero when the check is off.</summary>
    public TimeSpan RebalanceInterval { get; }

    /// <summary>
    /// Checks <paramref name="options"/> and loads the identity; throws one <see cref="InvalidOperationException"/>
    /// listing every problem. <paramref name="environmentName"/> is the host's environment: the options that
    /// turn off the edge's certificate validation are refused outside <c>Development</c>.
    /// </summary>
    /// <remarks><paramref name="connections"/>: the routes declared with <c>ListenTunnel</c>, registered beside the request hostnames.</remarks>
    public static TunnelSettings Create(TunnelOptions options, TimeProvider time, string? environmentName = null, IReadOnlyList<ConnectionRoute>? connections = null)
    {
        connections ??= [];
        var problems = new TunnelOptionsValidator(environmentName).Problems(options);
        var dnsOptions = new DnsResolverOptions();
        foreach (var server in TunnelOptionsValidator.ParseDnsServers(options, []))
        {
            dnsOptions.Servers.Add(server);
        }

        var identity = TunnelIdentityLoader.Load(options, problems, connections.Count > 0);
        if (problems.Count > 0)
        {
            throw new InvalidOperationException("The tunnel transport is misconfigured:" + Environment.NewLine + "  - " + string.Join(Environment.NewLine + "  - ", problems));
        }

        var state = BuildState(options, dnsOptions, identity!, generation: 0, previous: null, time, connections);
        return new TunnelSettings(options, dnsOptions, state, time, connections);
    }

    /// <summary>
    /// Reads the identity again from the options' files. A valid changed identity becomes
    /// <see cref="Current"/>; an invalid one leaves it as it was and the result says why.
    /// </summary>
    public TunnelReload Reload()
    {
        lock (_reloadLock)
        {
            var problems = new List<string>();
            var identity = TunnelIdentityLoader.Load(_options, problems, _connections.Count > 0);
            if (problems.Count > 0 || identity is null)
            {
                return TunnelReload.Failed(string.Join(" ", problems));
            }

            var current = Current;
            if (identity.Fingerprint == current.Fingerprint)
            {
                return TunnelReload.Unchanged;
            }

            TunnelDialState renewed;
            try
            {
                renewed = BuildState(_options, _dnsOptions, identity, current.Generation + 1, current, _time, _connections);
            }
            catch (InvalidOperationException ex)
            {
                return TunnelReload.Failed(ex.Message);
            }

            Volatile.Write(ref _current, renewed);
            return TunnelReload.Renewed(renewed);
        }
    }

    private static TunnelDialState BuildState(TunnelOptions options, DnsResolverOptions dnsOptions, TunnelIdentity identity, int generation, TunnelDialState? previous, TimeProvider time, IReadOnlyList<ConnectionRoute> connections)
    {
        var dialOptions = new EdgeDialOptions
        {
            ClientCertificate = identity.Certificate,
            DangerousAcceptAnyEdgeCertificate = options.DangerousAcceptAnyEdgeCertificate,
            DangerousAcceptAnyEdgeCertificateOverridesPinnedCa = options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa,
            EdgeServerName = identity.EdgeServerName,
            ConnectTimeout = options.ConnectTimeout,
        };

        if (!string.IsNullOrEmpty(options.ConnectorId))
        {
            dialOptions.ConnectorId = options.ConnectorId;
        }
        else if (previous is not null)
        {
            // The same process keeps its connector id across a renewal.
            dialOptions.ConnectorId = previous.DialOptions.ConnectorId;
        }

        dialOptions.ClientVersion = "Tunnel.Transport/" + typeof(TunnelOptions).Assembly.GetName().Version;
        dialOptions.TrustedEdgeCertificates.AddRange(identity.EdgeCas);
        foreach (var hostname in identity.Hostnames)
        {
            dialOptions.Hostnames.Add(hostname);
        }

        foreach (var route in connections)
        {
            dialOptions.Connections.Add(route);
        }

        var selector = previous is not null && previous.Edges.SequenceEqual(identity.EdgeTexts, StringComparer.Ordinal)
            ? previous.Selector // Same edges: keep what the selector learned (connect times, cool-downs, spread).
            : new EdgeSelector(CreateDiscovery(identity, dnsOptions, time), options.EdgeCoolDown, time);
        return new TunnelDialState(generation, identity.EdgeTexts, dialOptions, new EdgeDialer(dialOptions, time), selector, identity.Source, identity.Fingerprint);
    }

    private static IEdgeDiscovery CreateDiscovery(TunnelIdentity identity, DnsResolverOptions dnsOptions, TimeProvider time)
    {
        try
        {
            return identity.SrvName is { } srvName
                ? new SrvEdgeDiscovery(srvName, new DnsSrvResolver(dnsOptions, time), identity.Edges.Count > 0 ? identity.Edges : null, time)
                : new StaticEdgeDiscovery(identity.Edges);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"The tunnel transport is misconfigured: {ex.Message}", ex);
        }
    }
}
