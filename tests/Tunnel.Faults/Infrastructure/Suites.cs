namespace Tunnel.Faults.Infrastructure;

/// <summary>
/// Which parts of the fault suite run. CI runs <c>dotnet test</c> with nothing set: the fast subset
/// only, and every longer scenario shows as skipped with the way to run it. <c>run-full.sh</c> sets
/// <c>TUNNEL_FAULTS=full,soak</c>.
/// </summary>
public static class Suites
{
    public const string Variable = "TUNNEL_FAULTS";

    public static bool IsRequested(string suite) =>
        (Environment.GetEnvironmentVariable(Variable) ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Contains(suite, StringComparer.OrdinalIgnoreCase);
}

/// <summary>A scenario of the full fault suite: skipped (and reported as skipped) unless <c>TUNNEL_FAULTS</c> includes <c>full</c>.</summary>
public sealed class FullFactAttribute : FactAttribute
{
    public FullFactAttribute()
    {
        if (!Suites.IsRequested("full"))
        {
            Skip = $"full fault suite: set {Suites.Variable}=full or run tests/Tunnel.Faults/run-full.sh";
        }
    }
}

/// <summary>The soak run (10 minutes): skipped unless <c>TUNNEL_FAULTS</c> includes <c>soak</c>.</summary>
public sealed class SoakFactAttribute : FactAttribute
{
    public SoakFactAttribute()
    {
        if (!Suites.IsRequested("soak"))
        {
            Skip = $"soak run: set {Suites.Variable}=soak or run tests/Tunnel.Faults/run-full.sh";
        }
    }
}
