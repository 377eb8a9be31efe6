using Tunnel.Protocol.Registration;

namespace Tunnel.Edge.Dial.Dialing;

/// <summary>
/// A dial failed. <see cref="Phase"/> says where, <see cref="ErrorType"/> is a short stable name
/// for metrics (<c>error.type</c>).
/// </summary>
public class EdgeDialException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EdgeDialException(DialPhase phase, string errorType, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Phase = phase;
        ErrorType = errorType;
    }

    /// <summary>Where the dial failed.</summary>
    public DialPhase Phase { get; }

    /// <summary>A short stable name of the failure, e.g. <c>connection_refused</c>, <c>timeout</c>, <c>tls_error</c>, or a rejection code.</summary>
    public string ErrorType { get; }
}

/// <summary>The edge answered the registration with a refusal.</summary>
public sealed class RegistrationRejectedException : EdgeDialException
{
    /// <summary>Creates the exception from the edge's refusal.</summary>
    public RegistrationRejectedException(RegistrationRejected rejection)
        : base(DialPhase.Registration, (rejection ?? throw new ArgumentNullException(nameof(rejection))).Code,
            $"The edge refused the registration ({rejection.Code}): {rejection.Message}")
    {
        Rejection = rejection;
    }

    /// <summary>The edge's refusal, with its code, message, and whether and when to retry.</summary>
    public RegistrationRejected Rejection { get; }
}
