namespace Tunnel.Protocol.Registration;

/// <summary>
/// The peer broke the registration exchange: wrong magic, unknown frame type, oversized or
/// malformed document, or the connection ended mid-frame.
/// </summary>
public sealed class RegistrationProtocolException : Exception
{
    /// <summary>Creates the exception with a message saying what was wrong.</summary>
    public RegistrationProtocolException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error underneath.</summary>
    public RegistrationProtocolException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
