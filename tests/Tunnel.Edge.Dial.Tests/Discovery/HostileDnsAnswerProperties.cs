using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tunnel.Edge.Dial.Discovery;

namespace Tunnel.Edge.Dial.Tests.Discovery;

/// <summary>
/// Properties of SRV resolution against a hostile DNS server: whatever bytes come back as the answer
/// (random bytes, messages built from random parts with compression pointers anywhere, record counts and
/// data lengths that lie, mutated captured answers), DnsClient and our resolver either return targets or
/// throw <see cref="DnsResolutionException"/>, within a bounded time. Nothing else escapes to the
/// discovery loop. FsCheck shrinks any failure to a small message.
/// </summary>
[Trait("Suite", "Fast")]
public sealed class HostileDnsAnswerProperties : IDisposable
{
    internal const ushort Id = 0x1234;
    private const ushort SrvType = 33;
    private const string SrvName = "_tunnel._tcp.example.test";

    // Each run waits for one exchange on loopback; a few hundred keep the three properties to seconds.
    private const int Runs = 300;
    private static readonly TimeSpan TimeBound = TimeSpan.FromSeconds(3);

    // dnsmasq 2.90's answer to "_tunnel._tcp.example.test SRV" (id 0x1234): edge2 (priority 1, weight 5,
    // port 7845) and edge1 (priority 0, weight 10, port 7844), with edge1's A and AAAA and edge2's A in
    // the additional section, names compressed, TTL 2.
    internal static readonly byte[] CapturedSrvAnswer = Convert.FromHexString(
        "123485800001000200000003075f74756e6e656c045f746370076578616d706c6504746573740000210001c00c0021000100000002001a000100051ea5056564676532076578616d706c65047465737400c00c0021000100000002001a0000000a1ea4056564676531076578616d706c65047465737400c063000100010000000200047f000001c063001c000100000002001000000000000000000000000000000001c03d000100010000000200047f000002");

    private readonly ScriptedDnsServer _server = new();
    private readonly DnsSrvResolver _resolver;

    public HostileDnsAnswerProperties()
    {
        var options = new DnsResolverOptions { Timeout = TimeSpan.FromMilliseconds(500), Attempts = 1 };
        options.Servers.Add(_server.EndPoint);
        _resolver = new DnsSrvResolver(options);
    }

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task The_captured_answer_resolves_to_its_two_targets()
    {
        _server.Answer = CapturedSrvAnswer;
        var result = await _resolver.ResolveSrvAsync(SrvName, CancellationToken.None);
        Assert.Equal(["edge1.example.test", "edge2.example.test"], result.Targets.Select(t => t.Host).Order());
        Assert.Equal([IPAddress.Parse("127.0.0.1"), IPAddress.IPv6Loopback], result.Targets.Single(t => t.Host == "edge1.example.test").Addresses);
    }

    [Property(MaxTest = Runs, QuietOnSuccess = true)]
    public Property Random_bytes_as_the_answer_give_targets_or_a_resolution_error_quickly() =>
        Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), ResolvesSafely);

    [Property(MaxTest = Runs, QuietOnSuccess = true)]
    public Property Answers_built_from_random_parts_give_targets_or_a_resolution_error_quickly() =>
        Prop.ForAll(AssembledMessage().ToArbitrary(), ResolvesSafely);

    [Property(MaxTest = Runs, QuietOnSuccess = true)]
    public Property Mutated_captured_answers_give_targets_or_a_resolution_error_quickly() =>
        Prop.ForAll(MutatedAnswer().ToArbitrary(), ResolvesSafely);

    private bool ResolvesSafely(byte[] message)
    {
        _server.Answer = message;
        var started = Stopwatch.GetTimestamp();
        try
        {
            _resolver.ResolveSrvAsync(SrvName, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (DnsResolutionException ex) when (!string.IsNullOrWhiteSpace(ex.Message))
        {
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        if (elapsed > TimeBound)
        {
            throw new InvalidOperationException($"{message.Length} bytes took {elapsed.TotalMilliseconds:0} ms: {Convert.ToHexString(message)}");
        }

        return true;
    }

    /// <summary>A header that matches the query (so parsing goes on), a question, then random records.</summary>
    private static Gen<byte[]> AssembledMessage() =>
        from counts in Gen.Choose(0, 65535).ListOf(3)
        from n in Gen.Choose(0, 12)
        from records in Record().ListOf(n)
        select Assemble(counts, records);

    private static byte[] Assemble(IList<int> counts, IList<Action<WireBuilder>> records)
    {
        var w = new WireBuilder()
            .Header(Id, 0x8180, 1, counts[0], counts[1], counts[2])
            .Question("_tunnel._tcp.example.test", SrvType);
        foreach (var record in records)
        {
            record(w);
        }

        return w.ToArray();
    }

    private static Gen<Action<WireBuilder>> Record() =>
        from owner in Name()
        from type in Gen.Elements<ushort>(1, 5, 28, 33, 41, 0, 65535)
        from ttl in Gen.Elements(0u, 2u, uint.MaxValue)
        from data in ArbMap.Default.GeneratorFor<byte[]>()
        from declared in Gen.OneOf(Gen.Constant(-1), Gen.Choose(0, 65535))
        from target in Name()
        select (Action<WireBuilder>)(w =>
        {
            owner(w);
            var isSrv = type == 33;
            var length = declared >= 0 ? declared : data.Length + (isSrv ? 6 : 0);
            w.RecordFixed(type, ttl, length);
            if (isSrv)
            {
                w.U16(0).U16(5).U16(7844);
                target(w);
            }

            w.Bytes(data);
        });

    /// <summary>Plain labels, a compression pointer anywhere (back, forward, into itself), or both.</summary>
    private static Gen<Action<WireBuilder>> Name() =>
        from labels in Gen.Elements("edge1.example.test", "a", "", new string('x', 63) + ".test", "_tunnel._tcp.example.test")
        from pointer in Gen.OneOf(Gen.Constant(-1), Gen.Choose(0, 0x3FFF), Gen.Elements(12, 43))
        from terminate in ArbMap.Default.GeneratorFor<bool>()
        select (Action<WireBuilder>)(w =>
        {
            if (pointer < 0)
            {
                w.Name(labels);
            }
            else
            {
                w.Name(labels, terminate: false).Pointer(pointer == 43 ? w.Position : pointer);
            }
        });

    private static Gen<byte[]> MutatedAnswer() =>
        from n in Gen.Choose(1, 8)
        from edits in Edit().ListOf(n)
        select edits.Aggregate(CapturedSrvAnswer.ToList(), (bytes, edit) => edit(bytes)).ToArray();

    private static Gen<Func<List<byte>, List<byte>>> Edit() =>
        from kind in Gen.Choose(0, 4)
        from position in Gen.Choose(2, int.MaxValue)
        from value in ArbMap.Default.GeneratorFor<byte>()
        from count in Gen.Choose(1, 12)
        select (Func<List<byte>, List<byte>>)(bytes =>
        {
            if (bytes.Count <= 2)
            {
                return bytes;
            }

            // The id (bytes 0-1) is the query's anyway: the server writes it into every answer.
            var at = 2 + ((position - 2) % (bytes.Count - 2));
            switch (kind)
            {
                case 0:
                    bytes[at] = value;
                    break;
                case 1:
                    bytes[at] ^= (byte)(1 << (value % 8));
                    break;
                case 2:
                    bytes.RemoveRange(at, Math.Min(count, bytes.Count - at));
                    break;
                case 3:
                    bytes.InsertRange(at, Enumerable.Repeat(value, count));
                    break;
                default:
                    // A compression pointer where a label was.
                    bytes[at] = (byte)(0xC0 | (value & 0x3F));
                    break;
            }

            return bytes;
        });
}
