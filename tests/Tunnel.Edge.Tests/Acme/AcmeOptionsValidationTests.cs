using Tunnel.Edge.Certificates.Acme;

namespace Tunnel.Edge.Tests.Acme;

public class AcmeOptionsValidationTests
{
    [Fact]
    public void Every_problem_of_the_ACME_options_is_listed_with_what_to_fix()
    {
        var options = new EdgeOptions
        {
            Acme = new AcmeOptions
            {
                DirectoryUrl = "http://ca.example/dir",
                Names = ["good.example.com,bad name", " , "],
                Challenges = ["http-02"],
                ExternalAccountKeyId = "kid-1",
                OnDemand = true,
                OnDemandHandshakeWait = TimeSpan.FromSeconds(30),
                OnDemandOrdersPerHour = 0,
                DnsPropagationDelay = TimeSpan.FromMinutes(5),
            },
        };
        var problems = new List<string>();

        AcmeServices.Validate(options, problems);

        Assert.Contains(problems, p => p.Contains("is not an https:// URL", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("StoragePath is not set", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("'bad name' is not a valid DNS name", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("empty entry", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("'http-02' is not one of", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("go together", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("OnDemandOrdersPerHour", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("must be below Edge:Limits:TlsHandshakeTimeout", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("DnsPropagationDelay (300 s) must be at least 0 and below OrderTimeout", StringComparison.Ordinal));
        Assert.Equal(9, problems.Count);
    }

    [Fact]
    public void ACME_in_a_cluster_needs_the_cluster_key_that_seals_the_shared_certificate_keys()
    {
        var options = new EdgeOptions
        {
            Cluster = { StoreEndpoints = ["http://127.0.0.1:2379"] },
            Acme = new AcmeOptions { DirectoryUrl = "https://ca.example/dir", StoragePath = "/tmp/acme" },
        };
        var problems = new List<string>();

        AcmeServices.Validate(options, problems);
        Assert.Contains("ClusterKeyPath is not set", Assert.Single(problems), StringComparison.Ordinal);

        options.Acme.ClusterKeyPath = "/nonexistent/acme-cluster.key";
        problems.Clear();
        AcmeServices.Validate(options, problems);
        Assert.Contains("does not exist", Assert.Single(problems), StringComparison.Ordinal);
    }

    [Fact]
    public void ACME_off_is_never_a_problem()
    {
        var problems = new List<string>();
        AcmeServices.Validate(new EdgeOptions { Acme = new AcmeOptions { Names = ["bad name"] } }, problems);
        Assert.Empty(problems);
    }
}
