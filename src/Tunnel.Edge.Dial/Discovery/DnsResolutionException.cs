namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// A DNS lookup failed: the name does not exist, or no server gave a usable answer. The message names
/// the servers and what each did; <see cref="ErrorType"/> is a short stable name for metrics.
/// </summary>
internal sealed class DnsResolutionException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="errorType">A short stable name of the failure, e.g. <c>timeout</c> or <c>name_not_found</c>.</param>
    /// <param name="message">What failed, naming the DNS name and the servers.</param>
    /// <param name="innerException">The error that caused it, if any.</param>
    public DnsResolutionException(string errorType, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        ArgumentException.ThrowIfNullOrEmpty(errorType);
        ErrorType = errorType;
    }

    /// <summary>
    /// A short stable name of the failure: <c>name_not_found</c> (NXDOMAIN), <c>timeout</c>,
    /// <c>server_failure</c> (SERVFAIL), <c>refused</c>, <c>format_error</c> (a malformed answer or
    /// FORMERR), <c>not_implemented</c>, <c>connection_refused</c>, <c>network_error</c> or <c>no_servers</c>.
    /// </summary>
    public string ErrorType { get; }
}
