using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Tunnel.Edge.Dial.Credentials;
using Tunnel.Protocol.Registration;
using Tunnel.Edge.Dial.Dialing;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Redial;
using Tunnel.Protocol.Credentials;

namespace Tunnel.Transport.Internal;

/// <summary>
/// <see cref="TunnelOptions"/> checked and turned into the parts that dial: the one place where
/// options are validated, so a configuration mistake stops the app at start with a clear message.
/// The identity (certificate, pinned CAs, edges, hostnames) comes from the options and the credential
/// file, explicit options first; <see cref="Reload"/> reads the files again when they change.
/// </summary>
internal sealed class TunnelSettings
{
    private readonly TunnelOptions _options;
    private readonly DnsResolverOptions _dnsOptions;
    private readonly TimeProvider _time;
    private readonly Lock _reloadLock = new();
    private readonly IReadOnlyList<ConnectionRoute> _connections;
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
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        CheckDangerousOptions(options, environmentName ?? Environments.Production, problems);

        if (options.HaConnections is < 1 or > 64)
        {
            problems.Add($"HaConnections must be between 1 and 64 (it is {options.HaConnections}).");
        }

        var dnsOptions = new DnsResolverOptions();
        foreach (var text in options.DnsServers.SelectMany(SplitList))
        {
            if (IPEndPoint.TryParse(text, out var server))
            {
                dnsOptions.Servers.Add(server.Port == 0 ? new IPEndPoint(server.Address, DefaultDnsPort) : server);
            }
            else
            {
                problems.Add($"Tunnel:DnsServers: '{text}' is not an IP address with an optional port.");
            }
        }

        if (options.Redial is null || options.Redial.BaseDelay <= TimeSpan.Zero || options.Redial.MaxDelay < options.Redial.BaseDelay)
        {
            problems.Add("Tunnel:Redial needs BaseDelay > 0 and MaxDelay >= BaseDelay.");
        }

        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            problems.Add("Tunnel:ConnectTimeout must be positive.");
        }

        if (options.CredentialCheckInterval <= TimeSpan.Zero)
        {
            problems.Add("Tunnel:CredentialCheckInterval must be positive.");
        }

        if (options.RebalanceInterval < TimeSpan.Zero && options.RebalanceInterval != Timeout.InfiniteTimeSpan)
        {
            problems.Add("Tunnel:RebalanceInterval must not be negative (zero turns the check off).");
        }

        if (options.CertificateExpiryWarning < TimeSpan.Zero)
        {
            problems.Add("Tunnel:CertificateExpiryWarning must not be negative.");
        }

        connections ??= [];
        var identity = LoadIdentity(options, problems, connections.Count > 0);
        if (problems.Count > 0)
        {
            throw new InvalidOperationException("The tunnel transport is misconfigured:" + Environment.NewLine + "  - " + string.Join(Environment.NewLine + "  - ", problems));
        }

        var state = BuildState(options, dnsOptions, identity!, generation: 0, previous: null, time, connections);
        return new TunnelSettings(options, dnsOptions, state, time, connections);
    }

    private static void CheckDangerousOptions(TunnelOptions options, string environmentName, List<string> problems)
    {
        if (options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa && !options.DangerousAcceptAnyEdgeCertificate)
        {
            problems.Add("Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa is on without Tunnel:DangerousAcceptAnyEdgeCertificate, which it only widens: remove it.");
        }

        if ((options.DangerousAcceptAnyEdgeCertificate || options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa)
            && !string.Equals(environmentName, Environments.Development, StringComparison.OrdinalIgnoreCase))
        {
            var names = options.DangerousAcceptAnyEdgeCertificateOverridesPinnedCa
                ? "Tunnel:DangerousAcceptAnyEdgeCertificate and Tunnel:DangerousAcceptAnyEdgeCertificateOverridesPinnedCa are"
                : "Tunnel:DangerousAcceptAnyEdgeCertificate is";
            problems.Add($"{names} on in the '{environmentName}' environment: accepting any edge certificate lets anyone on the path impersonate the edge, so it is allowed only in Development. Remove it and pin the edge CA (the credential file's, or Tunnel:EdgeCaPath).");
        }
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
            var identity = LoadIdentity(_options, problems, _connections.Count > 0);
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

    private static TunnelDialState BuildState(TunnelOptions options, DnsResolverOptions dnsOptions, Identity identity, int generation, TunnelDialState? previous, TimeProvider time, IReadOnlyList<ConnectionRoute> connections)
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

        EdgeSelector selector;
        if (previous is not null && previous.Edges.SequenceEqual(identity.EdgeTexts, StringComparer.Ordinal))
        {
            // Same edges: keep what the selector learned (connect times, cool-downs, spread).
            selector = previous.Selector;
        }
        else
        {
            IEdgeDiscovery discovery;
            try
            {
                discovery = identity.SrvName is { } srvName
                    ? new SrvEdgeDiscovery(srvName, new DnsSrvResolver(dnsOptions, time), identity.Edges.Count > 0 ? identity.Edges : null, time)
                    : new StaticEdgeDiscovery(identity.Edges);
            }
            catch (ArgumentException ex)
            {
                throw new InvalidOperationException($"The tunnel transport is misconfigured: {ex.Message}", ex);
            }

            selector = new EdgeSelector(discovery, options.EdgeCoolDown, time);
        }

        return new TunnelDialState(generation, identity.EdgeTexts, dialOptions, new EdgeDialer(dialOptions, time), selector, identity.Source, identity.Fingerprint);
    }

    /// <summary>
    /// The identity from the options and the credential file: each explicit option wins over the file's
    /// value. Adds every problem found to <paramref name="problems"/>; returns <c>null</c> when there are any.
    /// </summary>
    private static Identity? LoadIdentity(TunnelOptions options, List<string> problems, bool hasConnectionRoutes)
    {
        var before = problems.Count;
        TunnelCredential? credential = null;
        var credentialPath = options.CredentialPath;
        if (!string.IsNullOrEmpty(credentialPath))
        {
            try
            {
                credential = TunnelCredential.Load(credentialPath);
            }
            catch (InvalidDataException ex)
            {
                problems.Add(ex.Message);
            }
        }

        var edges = new List<EdgeAddress>();
        var srvNames = new List<string>();
        var edgeTexts = options.Edges.SelectMany(SplitList).ToList();
        var edgeSource = "Tunnel:Edges";
        if (edgeTexts.Count == 0 && credential is not null)
        {
            edgeTexts = credential.Edges.SelectMany(SplitList).ToList();
            edgeSource = $"The credential file '{credentialPath}' edges";
        }

        foreach (var text in edgeTexts)
        {
            if (text.StartsWith(SrvPrefix, StringComparison.OrdinalIgnoreCase))
            {
                srvNames.Add(text[SrvPrefix.Length..]);
            }
            else if (EdgeAddress.TryParse(text, out var edge, out var error))
            {
                edges.Add(edge);
            }
            else
            {
                problems.Add(edgeSource == "Tunnel:Edges" ? error : $"{edgeSource}: {error}");
            }
        }

        // An unreadable credential file is the one problem to report, not everything it would have supplied.
        var credentialFailed = !string.IsNullOrEmpty(credentialPath) && credential is null;
        if (edgeTexts.Count == 0 && !credentialFailed)
        {
            problems.Add(credential is null
                ? "No edge is configured: set Tunnel:Edges (host:port, port 7844 by default, or srv:_tunnel._tcp.example.com)."
                : $"No edge is configured: the credential file '{credentialPath}' names none; set Tunnel:Edges (host:port, port 7844 by default, or srv:_tunnel._tcp.example.com).");
        }

        if (srvNames.Count > 1)
        {
            problems.Add($"{edgeSource} names {srvNames.Count} SRV names; one is supported (list the others' edges as host:port fallbacks).");
        }

        var hostnames = new List<string>();
        var hostnameTexts = options.Hostnames.SelectMany(SplitList).ToList();
        var hostnameSource = "Tunnel:Hostnames";
        if (hostnameTexts.Count == 0 && credential is not null)
        {
            // Every name the credential covers, wildcards as wildcard routes: the edge routes a.example.com
            // to a '*.example.com' registration.
            hostnameTexts = [.. credential.Hostnames];
            hostnameSource = $"The credential file '{credentialPath}' hostnames";
        }

        foreach (var text in hostnameTexts)
        {
            if (Protocol.HostnameRules.TryNormalize(text, out var hostname, out var error))
            {
                hostnames.Add(hostname);
            }
            else
            {
                problems.Add($"{hostnameSource}: {error}.");
            }
        }

        if (hostnameTexts.Count == 0 && !credentialFailed && !hasConnectionRoutes)
        {
            problems.Add(credential is null
                ? "No hostname is configured: set Tunnel:Hostnames to the names this app serves."
                : $"No hostname is configured: the credential file '{credentialPath}' names none; set Tunnel:Hostnames to the names this app serves.");
        }

        var certificate = options.Certificate;
        var source = "Tunnel:Certificate";
        if (certificate is not null)
        {
            if (!certificate.HasPrivateKey)
            {
                problems.Add("Tunnel:Certificate has no private key.");
            }
        }
        else if (!string.IsNullOrEmpty(options.CertificatePath))
        {
            source = options.CertificatePath;
            try
            {
                certificate = PemCertificates.LoadCertificateWithKey(options.CertificatePath, options.CertificateKeyPath);
            }
            catch (InvalidOperationException ex)
            {
                problems.Add(ex.Message);
            }
        }
        else if (credential is not null)
        {
            source = credentialPath!;
            try
            {
                certificate = credential.CreateCertificate(credentialPath!);
            }
            catch (InvalidDataException ex)
            {
                problems.Add(ex.Message);
            }
        }
        else if (string.IsNullOrEmpty(credentialPath))
        {
            problems.Add("No origin certificate: set Tunnel:CredentialPath to the credential file tunnel-edge issue writes, or Tunnel:CertificatePath (and CertificateKeyPath) to a certificate issued by the edge's CA.");
        }

        var edgeCas = new X509Certificate2Collection();
        if (!string.IsNullOrEmpty(options.EdgeCaPath))
        {
            try
            {
                edgeCas.AddRange(PemCertificates.LoadBundle(options.EdgeCaPath));
            }
            catch (InvalidOperationException ex)
            {
                problems.Add(ex.Message);
            }
        }

        edgeCas.AddRange(options.EdgeCaCertificates);
        if (string.IsNullOrEmpty(options.EdgeCaPath) && options.EdgeCaCertificates.Count == 0 && credential is not null)
        {
            try
            {
                edgeCas.AddRange(credential.CreateEdgeCas(credentialPath!));
            }
            catch (InvalidDataException ex)
            {
                problems.Add(ex.Message);
            }
        }

        var edgeServerName = options.EdgeServerName ?? credential?.EdgeServerName;
        if (problems.Count > before || certificate is null)
        {
            return null;
        }

        hostnames = hostnames.Distinct(StringComparer.Ordinal).ToList();
        var fingerprint = string.Join(
            "|",
            certificate.Thumbprint,
            string.Join(",", edgeCas.Select(ca => ca.Thumbprint).Order(StringComparer.Ordinal)),
            string.Join(",", edgeTexts),
            edgeServerName ?? "",
            string.Join(",", hostnames));
        return new Identity(certificate, edgeCas, edgeTexts, edges, srvNames.SingleOrDefault(), edgeServerName, hostnames, source, fingerprint);
    }

    private sealed record Identity(
        X509Certificate2 Certificate,
        X509Certificate2Collection EdgeCas,
        IReadOnlyList<string> EdgeTexts,
        IReadOnlyList<EdgeAddress> Edges,
        string? SrvName,
        string? EdgeServerName,
        IReadOnlyList<string> Hostnames,
        string Source,
        string Fingerprint);

    private const string SrvPrefix = "srv:";
    private const int DefaultDnsPort = 53;

    private static IEnumerable<string> SplitList(string value) =>
        (value ?? "").Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>
/// Everything one generation of dials uses. A renewed credential makes a new one; connections
/// remember which generation dialed them, so the renewal knows which to replace.
/// </summary>
internal sealed class TunnelDialState(int generation, IReadOnlyList<string> edges, EdgeDialOptions dialOptions, EdgeDialer dialer, EdgeSelector selector, string source, string fingerprint)
{
    public int Generation { get; } = generation;

    /// <summary>The configured edges as given (addresses and SRV name), for logs.</summary>
    public IReadOnlyList<string> Edges { get; } = edges;

    public EdgeDialOptions DialOptions { get; } = dialOptions;

    public EdgeDialer Dialer { get; } = dialer;

    public EdgeSelector Selector { get; } = selector;

    /// <summary>Where the certificate came from (a file path, or <c>Tunnel:Certificate</c>).</summary>
    public string Source { get; } = source;

    public string Fingerprint { get; } = fingerprint;

    public X509Certificate2 Certificate => DialOptions.ClientCertificate!;

    /// <summary>The certificate's serial number, upper-case hex: the credential id the edge lists and revokes.</summary>
    public string CredentialId => TunnelCredential.IdOf(Certificate);
}

/// <summary>The outcome of <see cref="TunnelSettings.Reload"/>.</summary>
internal sealed record TunnelReload(TunnelDialState? State, string? Problem)
{
    public static TunnelReload Unchanged { get; } = new(null, null);

    public static TunnelReload Renewed(TunnelDialState state) => new(state, null);

    public static TunnelReload Failed(string problem) => new(null, problem);
}
