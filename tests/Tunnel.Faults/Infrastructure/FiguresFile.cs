namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// Appends a scenario's figures to the file named by <c>TUNNEL_FAULTS_FIGURES</c> (run-full.sh sets it),
/// from which docs/reliability.md takes the last run's figures.
/// </summary>
public static class FiguresFile
{
    private static readonly Lock Gate = new();

    public static void Append(string scenario, string figures)
    {
        if (Environment.GetEnvironmentVariable("TUNNEL_FAULTS_FIGURES") is not { Length: > 0 } path)
        {
            return;
        }

        lock (Gate)
        {
            File.AppendAllText(path, $"### {scenario}\n\n```\n{figures.TrimEnd()}\n```\n\n");
        }
    }
}
