namespace Tunnel.Edge.Dial.Discovery;

/// <summary>
/// No edge could be found. The message says where discovery looked and why it found nothing;
/// <see cref="Exception.InnerException"/> holds the underlying error, if any.
/// </summary>
public sealed class EdgeDiscoveryException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EdgeDiscoveryException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the error that caused it.</summary>
    public EdgeDiscoveryException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
