namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// A DNS message is malformed, truncated, hostile, or does not answer the question that was asked.
/// The message says what is wrong and where.
/// </summary>
public sealed class DnsFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DnsFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the error that caused it.</summary>
    public DnsFormatException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
