using Tunnel.Protocol.Credentials;

namespace Tunnel.Protocol.Tests;

/// <summary>A secret file is refused when its group or other users may open it, with the command that fixes it.</summary>
public sealed class SecretFilePermissionsTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("tunnel-protocol-secret-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Theory]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite)]
    [InlineData(UnixFileMode.UserRead)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute)]
    public void A_file_only_its_owner_may_open_is_fine(UnixFileMode mode)
    {
        var path = Secret(mode);

        Assert.Null(SecretFilePermissions.Problem(path, "token file"));
    }

    [Theory]
    [InlineData(UnixFileMode.GroupRead, "040")]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, "640")]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead, "604")]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.GroupWrite, "420")]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.OtherExecute, "401")]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.GroupExecute, "410")]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.OtherWrite, "402")]
    public void A_file_its_group_or_others_may_open_is_refused_with_its_mode_and_the_fix(UnixFileMode mode, string octal)
    {
        var path = Secret(mode);

        Assert.Equal(
            $"The token file '{path}' holds a secret but its group or other users may access it (mode {octal}): run chmod 600 '{path}' (and make it owned by the user the process runs as).",
            SecretFilePermissions.Problem(path, "token file"));
    }

    [Fact]
    public void A_missing_file_is_left_for_reading_it_to_report()
    {
        Assert.Null(SecretFilePermissions.Problem(Path.Combine(_directory.FullName, "absent"), "token file"));
    }

    [Fact]
    public void A_symbolic_link_is_judged_by_the_file_it_points_to()
    {
        var open = Secret(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var closed = Secret(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var toOpen = File.CreateSymbolicLink(Path.Combine(_directory.FullName, "to-open"), open).FullName;
        var toClosed = File.CreateSymbolicLink(Path.Combine(_directory.FullName, "to-closed"), closed).FullName;

        Assert.NotNull(SecretFilePermissions.Problem(toOpen, "key"));
        Assert.Null(SecretFilePermissions.Problem(toClosed, "key"));
    }

    [Fact]
    public void No_path_is_an_argument_error()
    {
        Assert.Throws<ArgumentException>(() => SecretFilePermissions.Problem("", "key"));
        Assert.Throws<ArgumentNullException>(() => SecretFilePermissions.Problem(null!, "key"));
    }

    private string Secret(UnixFileMode mode)
    {
        var path = Path.Combine(_directory.FullName, Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, "secret");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }

        return path;
    }
}
