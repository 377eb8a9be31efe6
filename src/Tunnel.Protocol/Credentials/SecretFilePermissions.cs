namespace Tunnel.Protocol.Credentials;

/// <summary>
/// The one check, on both ends, that a file holding a secret (a private key, a credential, a token, a
/// password) is not open to other users: as ssh does with keys, such a file is refused rather than
/// used, with the command that fixes it.
/// </summary>
public static class SecretFilePermissions
{
    private const UnixFileMode OpenToOthers =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// Why <paramref name="path"/> must not be used as a secret, or <c>null</c> when its mode lets only its
    /// owner in (or the platform has no Unix modes, or the file cannot be examined: reading it reports that).
    /// A symbolic link is judged by the file it points to.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="what">What the file is, for the message ("admin token file").</param>
    public static string? Problem(string path, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        UnixFileMode mode;
        try
        {
            mode = File.GetUnixFileMode(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        if ((mode & OpenToOthers) == 0)
        {
            return null;
        }

        return $"The {what} '{path}' holds a secret but its group or other users may access it (mode {Convert.ToString((int)mode, 8).PadLeft(3, '0')}): run chmod 600 '{path}' (and make it owned by the user the process runs as).";
    }
}
