using System.Collections.Concurrent;
using System.Formats.Asn1;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;

namespace Tunnel.Edge.Certificates.Acme;

/// <summary>
/// The answers to the challenges in progress, served by the edge's visitor ports before anything else sees
/// the request: HTTP-01 at <c>/.well-known/acme-challenge/{token}</c> on the HTTP port (RFC 8555 section
/// 8.3), TLS-ALPN-01 on the HTTPS port (RFC 8737) to a handshake that offers only ALPN <c>acme-tls/1</c>.
/// </summary>
internal sealed class AcmeChallengeAnswers
{
    /// <summary>The path prefix of HTTP-01.</summary>
    public const string HttpPathPrefix = "/.well-known/acme-challenge/";

    /// <summary>RFC 8737's ALPN protocol.</summary>
    public static readonly SslApplicationProtocol AcmeTls = new("acme-tls/1");

    // id-pe-acmeIdentifier (RFC 8737 section 6.1).
    private const string AcmeIdentifierOid = "1.3.6.1.5.5.7.1.31";

    private readonly ConcurrentDictionary<string, string> _http = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SslStreamCertificateContext> _tlsAlpn = new(StringComparer.OrdinalIgnoreCase);

    // Answers published by the cluster's edges (this one's too), swapped whole on each change.
    private IReadOnlyDictionary<string, string> _sharedHttp = new Dictionary<string, string>();
    private IReadOnlyDictionary<string, (string KeyAuthorization, SslStreamCertificateContext Context)> _sharedTlsAlpn =
        new Dictionary<string, (string, SslStreamCertificateContext)>();

    /// <summary>Whether any TLS-ALPN-01 challenge is being answered: while none, the HTTPS port reads nothing.</summary>
    public bool AnyTlsAlpn => !_tlsAlpn.IsEmpty || Volatile.Read(ref _sharedTlsAlpn).Count > 0;

    /// <summary>
    /// Takes the answers the cluster's edges publish (<see cref="IAcmeShare"/>), so this edge answers a
    /// validator whichever edge ordered; a TLS-ALPN-01 certificate is made once per name and key authorization.
    /// </summary>
    public void UseShared(AcmeShared shared, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(shared);
        var previous = Volatile.Read(ref _sharedTlsAlpn);
        var tlsAlpn = new Dictionary<string, (string, SslStreamCertificateContext)>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, keyAuthorization) in shared.TlsAlpnAnswers)
        {
            tlsAlpn[name] = previous.TryGetValue(name, out var known) && known.KeyAuthorization == keyAuthorization
                ? known
                : (keyAuthorization, SslStreamCertificateContext.Create(CreateTlsAlpnCertificate(name, keyAuthorization, time), additionalCertificates: null, offline: true));
        }

        Volatile.Write(ref _sharedHttp, shared.HttpAnswers);
        Volatile.Write(ref _sharedTlsAlpn, tlsAlpn);
    }

    /// <summary>Answers HTTP-01 for <paramref name="token"/> until <see cref="RemoveHttp"/>.</summary>
    public void AddHttp(string token, string keyAuthorization) => _http[token] = keyAuthorization;

    public void RemoveHttp(string token) => _http.TryRemove(token, out _);

    /// <summary>Answers TLS-ALPN-01 for <paramref name="name"/> with a certificate made for <paramref name="keyAuthorization"/>.</summary>
    public void AddTlsAlpn(string name, string keyAuthorization, TimeProvider time) =>
        _tlsAlpn[name] = SslStreamCertificateContext.Create(CreateTlsAlpnCertificate(name, keyAuthorization, time), additionalCertificates: null, offline: true);

    public void RemoveTlsAlpn(string name) => _tlsAlpn.TryRemove(name, out _);

    /// <summary>The HTTP-01 middleware: answers a known token, 404 for an unknown one, everything else goes on.</summary>
    public RequestDelegate HttpMiddleware(RequestDelegate next) => context =>
    {
        var path = context.Request.Path.Value;
        if (path is null || !path.StartsWith(HttpPathPrefix, StringComparison.Ordinal) || !HttpMethods.IsGet(context.Request.Method))
        {
            return next(context);
        }

        var token = path[HttpPathPrefix.Length..];
        if (!_http.TryGetValue(token, out var answer) && !Volatile.Read(ref _sharedHttp).TryGetValue(token, out answer))
        {
            // A token the edge is not answering may still be the origin's own (certbot behind the tunnel).
            return next(context);
        }

        context.Response.ContentType = "application/octet-stream";
        return context.Response.WriteAsync(answer, context.RequestAborted);
    };

    /// <summary>
    /// The HTTPS port's connection middleware, before TLS: a ClientHello for a name with a TLS-ALPN-01
    /// challenge in progress that offers <c>acme-tls/1</c> gets the challenge certificate and the connection
    /// ends after the handshake (the validator sends nothing else); every other connection goes on, unread.
    /// </summary>
    public ConnectionDelegate TlsAlpnMiddleware(ConnectionDelegate next) => async connection =>
    {
        if (!AnyTlsAlpn || await AcmeClientHello.ReadAsync(connection).ConfigureAwait(false) is not { } hello
            || !hello.Protocols.Contains("acme-tls/1") || hello.ServerName is not { } name || TlsAlpnCertificate(name) is not { } certificate)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }

        var stream = new SslStream(new DuplexPipeStream(connection.Transport), leaveInnerStreamOpen: false);
        await using (stream.ConfigureAwait(false))
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await stream.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = certificate,
                    ApplicationProtocols = [AcmeTls],
                }, timeout.Token).ConfigureAwait(false);
                await stream.ShutdownAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException)
            {
                // The validator saw what it saw; its verdict comes back through the authorization.
            }
        }
    };

    private SslStreamCertificateContext? TlsAlpnCertificate(string name) =>
        _tlsAlpn.TryGetValue(name, out var local) ? local : Volatile.Read(ref _sharedTlsAlpn).TryGetValue(name, out var shared) ? shared.Context : null;

    /// <summary>
    /// RFC 8737 section 3: a self-signed certificate for <paramref name="name"/> alone, with the critical
    /// acmeIdentifier extension holding the SHA-256 of the key authorization as a DER OCTET STRING.
    /// </summary>
    internal static X509Certificate2 CreateTlsAlpnCertificate(string name, string keyAuthorization, TimeProvider time)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=ACME TLS-ALPN-01 challenge", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        request.CertificateExtensions.Add(san.Build(critical: true));
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteOctetString(SHA256.HashData(Encoding.ASCII.GetBytes(keyAuthorization)));
        request.CertificateExtensions.Add(new X509Extension(AcmeIdentifierOid, writer.Encode(), critical: true));
        var now = time.GetUtcNow();
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));

        // SslStream on Linux wants a key it can export into its own store: round-trip through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A Stream over a connection's pipes, for the one handshake this middleware does itself.</summary>
    private sealed class DuplexPipeStream(System.IO.Pipelines.IDuplexPipe pipe) : Stream
    {
        private readonly Stream _input = pipe.Input.AsStream();
        private readonly Stream _output = pipe.Output.AsStream();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => _output.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => _output.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => _input.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _input.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _input.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => _output.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _output.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _output.WriteAsync(buffer, offset, count, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
