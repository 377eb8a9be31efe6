using System.Diagnostics;
using FsCheck;
using FsCheck.Fluent;
using Tunnel.Edge.Dial.Discovery;
using Tunnel.Edge.Dial.Discovery.Dns;

namespace Tunnel.Edge.Dial.Tests.Discovery;

/// <summary>
/// Properties of the DNS answer parser over generated messages, beside the seeded mutation tests in
/// <see cref="DnsMessageTests"/>: answers built from random parts (names, compression pointers, also
/// pointing forward or at themselves, record counts, data lengths) and mutated captured answers either
/// parse or throw <see cref="DnsFormatException"/>, quickly, with bounded allocation. FsCheck shrinks
/// any failure to a small message.
/// </summary>
[Trait("Suite", "Fast")]
public class DnsParserProperties
{
    private const int Runs = 3000;
    private const long AllocationBound = 1024 * 1024;
    private static readonly TimeSpan TimeBound = TimeSpan.FromSeconds(1);
    private static readonly Config Quick = Config.QuickThrowOnFailure.WithMaxTest(Runs).WithQuietOnSuccess(true);

    [Fact]
    public void Random_bytes_never_crash_hang_or_allocate_without_bound() =>
        Check.One(Quick, Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), ParsesSafely));

    [Fact]
    public void Messages_built_from_random_parts_never_crash_hang_or_allocate_without_bound() =>
        Check.One(Quick, Prop.ForAll(AssembledMessage().ToArbitrary(), ParsesSafely));

    [Fact]
    public void Mutated_captured_answers_never_crash_hang_or_allocate_without_bound() =>
        Check.One(Quick, Prop.ForAll(MutatedAnswer().ToArbitrary(), ParsesSafely));

    private static bool ParsesSafely(byte[] message)
    {
        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var started = Stopwatch.GetTimestamp();
        try
        {
            DnsResponse.Parse(message, DnsMessageTests.SrvQuery);
        }
        catch (DnsFormatException ex) when (!string.IsNullOrWhiteSpace(ex.Message))
        {
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        var elapsed = Stopwatch.GetElapsedTime(started);
        if (allocated > AllocationBound || elapsed > TimeBound)
        {
            throw new InvalidOperationException($"{message.Length} bytes took {elapsed.TotalMilliseconds:0} ms and {allocated} bytes: {Convert.ToHexString(message)}");
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
            .Header(DnsMessageTests.Id, 0x8180, 1, counts[0], counts[1], counts[2])
            .Question("_tunnel._tcp.example.test", (ushort)DnsRecordType.Srv);
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
        select edits.Aggregate(DnsMessageTests.CapturedSrvAnswer.ToList(), (bytes, edit) => edit(bytes)).ToArray();

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

            // Keep the id (bytes 0-1) so that the parser goes past the header.
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
