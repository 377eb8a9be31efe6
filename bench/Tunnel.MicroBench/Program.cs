using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Tunnel.MicroBench -- --filter '*' --job short --memory
// (bench/run --micro [FILTER] does this). Allocations are reported by the memory diagnoser.
BenchmarkSwitcher.FromAssembly(typeof(Tunnel.MicroBench.ForwarderHeaderBenchmarks).Assembly).Run(args);
