using System.Net.Security;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Tunnel.Edge.Tunnels;

/// <summary>
/// Asks OpenSSL to let go of a TLS connection's record buffers while it is idle
/// (<c>SSL_MODE_RELEASE_BUFFERS</c>, which nginx sets on every connection): the tunnel port's, and the
/// visitor HTTPS port's (<see cref="Visitors.VisitorTlsBuffers"/>). Without it each accepted
/// tunnel keeps about 14 KiB of buffers, sized for the largest TLS record, for as long as it lives,
/// though an idle tunnel only ever carries a heartbeat; with thousands of origins that is most of the
/// edge's memory past the TLS state itself. The buffers come back from the C heap for each record a
/// busy connection reads or writes, a cost too small to see beside the record's encryption.
/// </summary>
/// <remarks>
/// <see cref="SslStream"/> has no setting for the mode, so this reads the OpenSSL handle from the
/// stream's private field and calls <c>SSL_ctrl</c> in the libssl the runtime itself loaded (found in
/// <c>/proc/self/maps</c>, never a different copy). Every step is checked: on another platform, another
/// TLS library or a runtime whose field is gone, it does nothing and says so once in the log; the
/// connection works the same, only with its buffers kept. A test asserts the mode took effect, so a
/// runtime update that breaks the lookup fails the build instead of silently costing memory.
/// </remarks>
internal static class TlsBufferRelease
{
    private const int SslCtrlMode = 33;              // SSL_CTRL_MODE (OpenSSL 1.1 and 3)
    private const long SslModeReleaseBuffers = 0x10; // SSL_MODE_RELEASE_BUFFERS

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate long SslCtrl(IntPtr ssl, int command, long argument, IntPtr pointerArgument);

    private static readonly object Gate = new();
    private static Binding? s_binding;

    /// <summary>
    /// Sets the release-buffers mode on a stream whose handshake is complete and on which nothing is
    /// reading or writing yet. Returns true when OpenSSL reports the mode set; false, with
    /// <paramref name="firstProblem"/> set the first time only, when it cannot be done here.
    /// </summary>
    public static bool TryApply(SslStream stream, out string? firstProblem)
    {
        firstProblem = null;
        var binding = s_binding ?? Bind(out firstProblem);
        return Control(binding, stream, SslModeReleaseBuffers);
    }

    /// <summary>Reads back whether the mode is set on a stream (tests).</summary>
    internal static bool IsApplied(SslStream stream) =>
        s_binding is { } binding && Control(binding, stream, 0); // SSL_CTRL_MODE ORs its argument in: zero adds nothing.

    /// <summary>Calls <c>SSL_ctrl(SSL_CTRL_MODE, modeToAdd)</c> on the stream's handle; whether the result has the release bit.</summary>
    private static bool Control(Binding binding, SslStream stream, long modeToAdd)
    {
        if (binding.Control is null || binding.ContextField?.GetValue(stream) is not SafeHandle handle || handle.IsInvalid)
        {
            return false;
        }

        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return (binding.Control(handle.DangerousGetHandle(), SslCtrlMode, modeToAdd, IntPtr.Zero) & SslModeReleaseBuffers) != 0;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static Binding Bind(out string? problem)
    {
        lock (Gate)
        {
            if (s_binding is { } bound)
            {
                problem = null;
                return bound;
            }

            var binding = Resolve();
            s_binding = binding;
            problem = binding.Problem;
            return binding;
        }
    }

    private static Binding Resolve()
    {
        if (!OperatingSystem.IsLinux())
        {
            return new Binding(null, null, "TLS here is not OpenSSL");
        }

        var field = typeof(SslStream).GetField("_securityContext", BindingFlags.Instance | BindingFlags.NonPublic);
        if (field is null || !typeof(SafeHandle).IsAssignableFrom(field.FieldType))
        {
            return new Binding(null, null, $"this runtime's SslStream ({Environment.Version}) does not hold its OpenSSL handle where expected");
        }

        // The runtime loads libssl by itself at the first handshake; this must call into that same copy.
        string? path = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                var slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash >= 0 && Path.GetFileName(line.AsSpan(slash)).StartsWith("libssl.so", StringComparison.Ordinal))
                {
                    path = line[slash..];
                    break;
                }
            }
        }
        catch (IOException ex)
        {
            return new Binding(null, null, $"could not read /proc/self/maps: {ex.Message}");
        }

        if (path is null)
        {
            return new Binding(null, null, "no libssl is loaded in this process");
        }

        if (!NativeLibrary.TryLoad(path, out var library) || !NativeLibrary.TryGetExport(library, "SSL_ctrl", out var export))
        {
            return new Binding(null, null, $"{path} has no SSL_ctrl");
        }

        return new Binding(field, Marshal.GetDelegateForFunctionPointer<SslCtrl>(export), null);
    }

    private sealed record Binding(FieldInfo? ContextField, SslCtrl? Control, string? Problem);
}
