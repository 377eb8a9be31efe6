namespace Tunnel.Edge.Identity;

/// <summary>
/// Writes the edge's state files: to a temporary file in the same directory, then a rename, so a
/// reader (the running edge, a second command) never sees half a file; secrets are created owner-only.
/// </summary>
internal static class SecureFile
{
    /// <summary>Writes <paramref name="content"/> to <paramref name="path"/> atomically; <paramref name="secret"/> files get mode 0600.</summary>
    public static void WriteAtomically(string path, string content, bool secret)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = secret ? UnixFileMode.UserRead | UnixFileMode.UserWrite : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        }

        try
        {
            using (var stream = new FileStream(temporary, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(content);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>Reads a state file, turning every I/O failure into one message that names the file.</summary>
    public static string Read(string path, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"Cannot read the {what} '{path}': {ex.Message}", ex);
        }
    }
}
