using System.CommandLine;
using Tunnel.Edge.Commands;

var root = new RootCommand("tunnel-edge: the edge server of a self-hosted tunnel for ASP.NET Core apps.");
root.Subcommands.Add(DirectoryCommands.Init());
root.Subcommands.Add(CredentialCommands.Issue());
root.Subcommands.Add(CertificateCommands.IssueSite());
root.Subcommands.Add(CredentialCommands.Credentials());
root.Subcommands.Add(CredentialCommands.Revoke());
root.Subcommands.Add(AdminCommands.Routes());
root.Subcommands.Add(AdminCommands.Drain());
root.Subcommands.Add(AccessCommands.RevokeServiceToken());
root.Subcommands.Add(DirectoryCommands.RotateCa());
root.Subcommands.Add(DirectoryCommands.RenewServer());
root.Subcommands.Add(DirectoryCommands.RetireCa());
root.Subcommands.Add(CertificateCommands.IssueEdge());
root.Subcommands.Add(new ServeCommand().Command);
// The host handles SIGTERM itself (drain, then exit 0); System.CommandLine's own handler would kill
// the process two seconds into the drain.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
