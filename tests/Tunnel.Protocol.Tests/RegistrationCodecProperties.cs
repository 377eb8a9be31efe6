using System.Buffers.Binary;
using System.Diagnostics;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tunnel.Protocol.Registration;

namespace Tunnel.Protocol.Tests;

/// <summary>
/// Properties of the registration codec over generated input: whatever bytes a peer sends, reading a
/// frame returns a valid document or throws <see cref="RegistrationProtocolException"/>, quickly, and
/// allocates no more than the frame limit allows.
/// </summary>
[Trait("Suite", "Fast")]
public class RegistrationCodecProperties
{
    private const int Runs = 3000;

    // The body buffer is at most 64 KiB; JSON parsing of it a few times that. A decoder that trusted a
    // length or a count from the wire would allocate far more.
    private const long AllocationBound = 1024 * 1024;
    private static readonly TimeSpan TimeBound = TimeSpan.FromSeconds(1);


    [Property(MaxTest = Runs, QuietOnSuccess = true)]
    public Property Random_bytes_never_crash_hang_or_allocate_without_bound() =>
        Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), bytes => DecodesSafely(bytes));

    [Property(MaxTest = Runs, QuietOnSuccess = true)]
    public Property Random_bodies_behind_a_valid_header_never_crash_hang_or_allocate_without_bound() =>
        Prop.ForAll(BodyBehindHeader().ToArbitrary(), bytes => DecodesSafely(bytes));

    [Property(MaxTest = Runs, QuietOnSuccess = true)]
    public Property Mutated_valid_frames_never_crash_hang_or_allocate_without_bound() =>
        Prop.ForAll(MutatedFrame().ToArbitrary(), bytes => DecodesSafely(bytes));

    [Property(MaxTest = 500, QuietOnSuccess = true)]
    public Property Valid_requests_round_trip() =>
        Prop.ForAll(ValidRequest().ToArbitrary(), request =>
        {
            var decoded = RegistrationCodec.ReadRequestAsync(new MemoryStream(RegistrationCodec.EncodeRequest(request)), CancellationToken.None).GetAwaiter().GetResult();
            return decoded.ConnectorId == request.ConnectorId && decoded.ConnectionIndex == request.ConnectionIndex
                && decoded.Hostnames.SequenceEqual(request.Hostnames) && decoded.PreviousAttempts == request.PreviousAttempts;
        });

    /// <summary>Reads the bytes as a request and as a response; true when each ends as promised.</summary>
    private static bool DecodesSafely(byte[] bytes)
    {
        foreach (var read in new Func<Stream, CancellationToken, Task>[] { RegistrationCodec.ReadRequestAsync, RegistrationCodec.ReadResponseAsync })
        {
            using var timeout = new CancellationTokenSource(TimeBound);
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var started = Stopwatch.GetTimestamp();
            try
            {
                // A MemoryStream completes every read at once, so the whole decode runs on this thread.
                read(new MemoryStream(bytes), timeout.Token).GetAwaiter().GetResult();
            }
            catch (RegistrationProtocolException)
            {
            }

            var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            var elapsed = Stopwatch.GetElapsedTime(started);
            if (allocated > AllocationBound || elapsed > TimeBound)
            {
                throw new InvalidOperationException($"{bytes.Length} bytes took {elapsed.TotalMilliseconds:0} ms and {allocated} bytes: {Convert.ToHexString(bytes.AsSpan(0, Math.Min(64, bytes.Length)))}");
            }
        }

        return true;
    }

    private static Gen<byte[]> BodyBehindHeader() =>
        from type in Gen.Elements((byte)1, (byte)2)
        from body in Gen.OneOf(
            ArbMap.Default.GeneratorFor<byte[]>(),
            ArbMap.Default.GeneratorFor<string>().Select(s => System.Text.Encoding.UTF8.GetBytes("{\"hostnames\":[\"" + s + "\"]," + s + "}")))
        from declared in Gen.OneOf(Gen.Constant(body.Length), Gen.Choose(-10, TunnelLimits.MaxFrameBodyBytes + 10), Gen.Constant(int.MaxValue))
        select Frame(type, declared, body);

    private static Gen<byte[]> MutatedFrame() =>
        from valid in Gen.OneOf(
            ValidRequest().Select(RegistrationCodec.EncodeRequest),
            Gen.Constant(RegistrationCodec.EncodeResponse(RegistrationResponse.Accept(new RegistrationAccepted { ConnectionId = "c", EdgeName = "e", Region = "r" }))))
        from n in Gen.Choose(1, 6)
        from mutations in Mutation().ListOf(n)
        select mutations.Aggregate(valid, (bytes, mutate) => mutate(bytes));

    private static Gen<Func<byte[], byte[]>> Mutation() =>
        from kind in Gen.Choose(0, 4)
        from position in Gen.Choose(0, int.MaxValue)
        from value in ArbMap.Default.GeneratorFor<byte>()
        from count in Gen.Choose(1, 40)
        select (Func<byte[], byte[]>)(bytes =>
        {
            if (bytes.Length == 0)
            {
                return [value];
            }

            var at = position % bytes.Length;
            var list = bytes.ToList();
            switch (kind)
            {
                case 0:
                    list[at] = value;
                    break;
                case 1:
                    list[at] ^= (byte)(1 << (value % 8));
                    break;
                case 2:
                    list.RemoveRange(at, Math.Min(count, list.Count - at));
                    break;
                case 3:
                    list.InsertRange(at, Enumerable.Repeat(value, count));
                    break;
                default:
                    // Duplicate a slice: repeated keys, nested arrays, a second document.
                    list.InsertRange(at, list.Skip(at).Take(count).ToArray());
                    break;
            }

            return [.. list];
        });

    private static Gen<RegistrationRequest> ValidRequest() =>
        from connector in Gen.Elements("c1", "connector-ä", new string('x', 64))
        from index in Gen.Choose(0, 15)
        from n in Gen.Choose(1, 5)
        from hostnames in Gen.Elements("app.example.com", "*.example.org", "a.b.c.test", "xn--bcher-kva.example").ListOf(n)
        from attempts in Gen.Choose(0, 1000)
        select new RegistrationRequest { ConnectorId = connector, ConnectionIndex = index, Hostnames = [.. hostnames.Distinct()], ClientVersion = "prop/1", PreviousAttempts = attempts };

    private static byte[] Frame(byte type, int declaredLength, byte[] body)
    {
        var frame = new byte[RegistrationCodec.HeaderLength + body.Length];
        "TUN1"u8.CopyTo(frame);
        frame[4] = type;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), declaredLength);
        body.CopyTo(frame.AsSpan(RegistrationCodec.HeaderLength));
        return frame;
    }
}
