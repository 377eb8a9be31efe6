using System.CommandLine;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Tunnel.Edge.Identity;

namespace Tunnel.Edge.Commands;

/// <summary>
/// Calls a running edge's admin API for the commands that act on it (routes, drain, revoke): finds the
/// token, sends one request, prints the answer or why there is none.
/// </summary>
internal sealed class AdminClient
{
    private const string DefaultUrl = "http://127.0.0.1:9844";

    // An admin call is one small request to a local port; a stuck edge should not hang the shell.
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(15);

    private readonly string _baseUrl;
    private readonly string _token;

    private AdminClient(string baseUrl, string token)
    {
        _baseUrl = baseUrl;
        _token = token;
    }

    /// <summary>The <c>--admin</c> option: the running edge's admin URL.</summary>
    public static Option<string?> UrlOption() => new("--admin") { Description = "The running edge's admin URL (default http://127.0.0.1:9844)." };

    /// <summary>The <c>--token-file</c> option.</summary>
    public static Option<FileInfo?> TokenFileOption() => new("--token-file") { Description = "The admin token file (default: admin.token in --dir)." };

    /// <summary>
    /// Sends one request to the edge the options name and hands the JSON answer to <paramref name="print"/>;
    /// 0 when the edge answered with success, 1 (the reason on standard error) otherwise.
    /// </summary>
    public static async Task<int> CallAsync(ParseResult result, Option<string?> adminOption, Option<FileInfo?> tokenOption, Option<DirectoryInfo?> dirOption, HttpMethod method, string path, string? body, Action<JsonElement> print, CancellationToken cancellationToken)
    {
        var client = Create(result.GetValue(adminOption), result.GetValue(tokenOption), result.GetValue(dirOption));
        return client is null ? 1 : await client.SendAsync(method, path, body, print, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A client with the token from the token file, else from the edge directory; <c>null</c> (the reason printed) without one.</summary>
    private static AdminClient? Create(string? url, FileInfo? tokenFile, DirectoryInfo? directory)
    {
        var tokenPath = tokenFile?.FullName ?? (directory is not null ? new EdgeDirectory(directory.FullName).File(EdgeDirectory.AdminTokenFile) : null);
        if (tokenPath is null)
        {
            Console.Error.WriteLine("The admin API needs its token: --token-file FILE or --dir EDGE_DIR (its admin.token).");
            return null;
        }

        try
        {
            return new AdminClient((url ?? DefaultUrl).TrimEnd('/'), AdminToken.Load(tokenPath));
        }
        catch (InvalidOperationException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return null;
        }
    }

    private async Task<int> SendAsync(HttpMethod method, string path, string? body, Action<JsonElement> print, CancellationToken cancellationToken)
    {
        using var client = new HttpClient { Timeout = CallTimeout };
        using var request = new HttpRequestMessage(method, _baseUrl + path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        try
        {
            using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            using var document = JsonDocument.Parse(text.Length > 0 ? text : "{}");
            if (!response.IsSuccessStatusCode)
            {
                var error = document.RootElement.TryGetProperty("error", out var message) ? message.GetString() : text;
                Console.Error.WriteLine($"The edge at {_baseUrl} answered {(int)response.StatusCode}: {error}");
                return 1;
            }

            print(document.RootElement);
            return 0;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            Console.Error.WriteLine($"Cannot reach the edge's admin API at {_baseUrl}: {ex.Message}");
            return 1;
        }
    }
}
